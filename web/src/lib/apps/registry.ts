/**
 * The apps of the desktop. Each app is loaded on first open, so the first page
 * load only carries the shell. Apps of later roles (companion, power, sync,
 * updates) are added here with their own `roles` filter.
 * Power opens for every user; only administrators add and switch plugs. DNS opens for every
 * user; only administrators see its buttons that change something.
 */
import type { Component } from 'svelte';
import type { SystemRole } from '$lib/api';

export interface AppDef {
	id: string;
	title: string;
	/** Label under the dock icon. */
	short: string;
	icon: string;
	/** Shown only when the box runs one of these roles (none = always). */
	roles?: SystemRole[];
	/** Only administrators can open it. */
	adminOnly?: boolean;
	size: { w: number; h: number };
	keywords: string[];
	/** Things inside the app that the top-bar search finds; `action` is handed to the app (see stores/intents). */
	settings: { label: string; action?: string }[];
	load: () => Promise<{ default: Component }>;
}

export const APPS: AppDef[] = [
	{
		id: 'storage',
		title: 'Storage Manager',
		short: 'Storage',
		icon: 'storage',
		roles: ['nas'],
		adminOnly: true,
		size: { w: 820, h: 560 },
		keywords: ['disk', 'drive', 'usb', 'filesystem', 'volume', 'partition'],
		settings: [{ label: 'Mount a disk' }, { label: 'Unmount a disk' }, { label: 'Format a disk' }, { label: 'Disk usage' }],
		load: () => import('./StorageApp.svelte')
	},
	{
		id: 'shares',
		title: 'Shares',
		short: 'Shares',
		icon: 'shares',
		roles: ['nas', 'companion'],
		adminOnly: true,
		size: { w: 820, h: 560 },
		keywords: ['smb', 'samba', 'nfs', 'folder', 'network share', 'export'],
		settings: [{ label: 'New share', action: 'new-share' }, { label: 'SMB sharing' }, { label: 'NFS export' }, { label: 'Share access' }],
		load: () => import('./SharesApp.svelte')
	},
	{
		id: 'users',
		title: 'Users & Groups',
		short: 'Users',
		icon: 'users',
		adminOnly: true,
		size: { w: 760, h: 540 },
		keywords: ['account', 'user', 'group', 'member', 'permission'],
		settings: [
			{ label: 'Add user', action: 'add-user' },
			{ label: 'Change password' },
			{ label: 'New group', action: 'new-group' },
			{ label: 'Administrator role' }
		],
		load: () => import('./UsersApp.svelte')
	},
	{
		id: 'dns',
		title: 'DNS',
		short: 'DNS',
		icon: 'dns',
		roles: ['nas', 'companion'],
		size: { w: 860, h: 600 },
		keywords: ['dns', 'ad blocking', 'blocklist', 'domain', 'name server', 'resolver', 'pi-hole', 'upstream'],
		settings: [
			{ label: 'Add DNS record', action: 'add-record' },
			{ label: 'DNS switch', action: 'switch' },
			{ label: 'Blocklists', action: 'blocklists' },
			{ label: 'Query log', action: 'querylog' },
			{ label: 'Allowlist and denylist', action: 'blocklists' }
		],
		load: () => import('./DnsApp.svelte')
	},
	{
		id: 'power',
		title: 'Power',
		short: 'Power',
		icon: 'plug',
		roles: ['nas', 'companion'],
		size: { w: 860, h: 600 },
		keywords: ['power', 'energy', 'watt', 'kwh', 'cost', 'electricity', 'smart plug', 'tapo', 'p110'],
		settings: [{ label: 'Add plug', action: 'add-plug' }, { label: 'Energy and cost', action: 'energy' }, { label: 'Switch a plug' }],
		load: () => import('./PowerApp.svelte')
	},
	{
		id: 'companion',
		title: 'Companion',
		short: 'Companion',
		icon: 'companion',
		roles: ['companion'],
		adminOnly: true,
		size: { w: 860, h: 620 },
		keywords: ['wake', 'wake-on-lan', 'wol', 'heartbeat', 'inbox', 'pairing', 'token', 'nas state'],
		settings: [
			{ label: 'Wake the NAS', action: 'wake' },
			{ label: 'Inbox', action: 'inbox' },
			{ label: 'Companion settings', action: 'settings' },
			{ label: 'Pairing token', action: 'pairing' },
			{ label: 'How much the NAS runs', action: 'usage' }
		],
		load: () => import('./CompanionApp.svelte')
	},
	{
		id: 'nas',
		title: 'NAS Dashboard',
		short: 'NAS',
		icon: 'nas',
		roles: ['companion'],
		size: { w: 780, h: 580 },
		keywords: ['nas', 'snapshot', 'big nas', 'asleep', 'disks', 'shares'],
		settings: [{ label: "The NAS's last snapshot" }],
		load: () => import('./NasApp.svelte')
	},
	{
		id: 'system',
		title: 'System',
		short: 'System',
		icon: 'system',
		size: { w: 720, h: 560 },
		keywords: ['info', 'services', 'hardware', 'temperature', 'kernel', 'version'],
		settings: [
			{ label: 'Reboot', action: 'reboot' },
			{ label: 'Shut down', action: 'shutdown' },
			{ label: 'Services' },
			{ label: 'Hostname' },
			{ label: 'Temperature' }
		],
		load: () => import('./SystemApp.svelte')
	},
	{
		id: 'events',
		title: 'Event Log',
		short: 'Event Log',
		icon: 'events',
		size: { w: 760, h: 520 },
		keywords: ['log', 'history', 'activity', 'journal'],
		settings: [{ label: 'Recent events' }],
		load: () => import('./EventsApp.svelte')
	}
];

export function appById(id: string) {
	return APPS.find((a) => a.id === id) ?? null;
}

/** The apps this user may open on a box with these roles. */
export function availableApps(roles: readonly string[] | null, isAdmin: boolean) {
	return APPS.filter(
		(a) => (!a.adminOnly || isAdmin) && (!a.roles || !roles || a.roles.some((r) => roles.includes(r)))
	);
}

export interface SearchHit {
	app: AppDef;
	label: string;
	/** The setting inside the app, or null for the app itself. */
	setting: string | null;
	/** What the app should do when opened from this hit. */
	action: string | null;
}

/** Case-insensitive search over app titles, keywords and settings; apps first. */
export function search(apps: AppDef[], query: string, limit = 8): SearchHit[] {
	const q = query.trim().toLowerCase();
	if (!q) return [];
	const hits: { hit: SearchHit; rank: number }[] = [];
	for (const app of apps) {
		const title = app.title.toLowerCase();
		if (title.startsWith(q)) hits.push({ hit: { app, label: app.title, setting: null, action: null }, rank: 0 });
		else if (title.includes(q) || app.keywords.some((k) => k.includes(q)))
			hits.push({ hit: { app, label: app.title, setting: null, action: null }, rank: 1 });
		for (const s of app.settings) {
			if (s.label.toLowerCase().includes(q))
				hits.push({ hit: { app, label: s.label, setting: s.label, action: s.action ?? null }, rank: 2 });
		}
	}
	return hits
		.sort((a, b) => a.rank - b.rank)
		.slice(0, limit)
		.map((h) => h.hit);
}
