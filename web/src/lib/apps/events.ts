/** Human wording for events of the `/api/ws` stream and `/api/events`. */
import type { PinasEvent } from '$lib/api';
import { bytes } from '$lib/util/format';

export function describe(e: PinasEvent): string {
	const d = e.data ?? {};
	const name = d.name ?? d.device ?? d.path ?? d.uuid ?? '';
	switch (e.type) {
		case 'storage.disk.added':
			return `Disk ${name} connected${d.size_bytes ? ` (${bytes(d.size_bytes)})` : ''}`;
		case 'storage.disk.removed':
			return `Disk ${name} removed`;
		case 'storage.mounted':
			return `Mounted ${d.label || name}${d.mount_point ? ` at ${d.mount_point}` : ''}`;
		case 'storage.unmounted':
			return `Unmounted ${d.label || name}`;
		case 'share.created':
			return `Share ${d.name ?? ''} created`;
		case 'share.updated':
			return `Share ${d.name ?? ''} changed`;
		case 'share.deleted':
			return `Share ${d.name ?? d.id ?? ''} deleted`;
		case 'task.progress':
			return d.done ? `${d.label}: ${d.error ? `failed (${d.error})` : 'finished'}` : `${d.label}: ${Math.round(d.percent)}%`;
		case 'dns.switch.changed':
			return `DNS switch ${d.name ?? ''} now points to ${d.target === 'nas' ? 'the NAS' : d.target === 'companion' ? 'the companion' : d.target}${d.reason ? ` (${d.reason})` : ''}`;
		case 'dns.records.changed':
			return 'Local DNS records changed';
		case 'dns.rules.changed':
			return 'DNS allowlist or denylist changed';
		case 'dns.blocking.changed': {
			const by = d.changed_by ? ` by ${d.changed_by === 'pihole-api' ? 'the Pi-hole API' : d.changed_by === 'timer' ? 'its timer' : d.changed_by}` : '';
			const until = d.enabled === false && typeof d.until === 'number' ? ` until ${new Date(d.until * 1000).toLocaleTimeString()}` : '';
			return `DNS blocking turned ${d.enabled ? 'on' : 'off'}${until}${by}${d.reason && d.changed_by !== 'timer' ? ` (${d.reason})` : ''}`;
		}
		case 'dns.settings.changed':
			return 'DNS settings changed';
		case 'dns.blocklists.updated':
			return `Blocklists updated${typeof d.domains === 'number' ? `: ${d.domains.toLocaleString()} names blocked` : ''}`;
		case 'notification.new':
			return [d.title, d.message].filter(Boolean).join(': ');
		case 'companion.nas.state':
			return `NAS ${String(d.state ?? '').replace(/_/g, ' ')}${d.reason ? ` (${d.reason})` : ''}`;
		case 'power.plug.added':
			return `Plug ${d.name ?? ''} added`.replace('  ', ' ');
		case 'power.plug.removed':
			return `Plug ${d.name ?? d.id ?? ''} removed`;
		case 'power.plug.switched':
			return `Plug ${d.name ?? d.id ?? ''} switched ${d.on ? 'on' : 'off'}${d.by ? ` by ${d.by}` : ''}`;
		default:
			return e.type.replace(/[._]/g, ' ');
	}
}

/** 'storage.disk.added' → 'storage'. */
export function category(e: PinasEvent): string {
	return e.type.split('.')[0];
}

export function level(e: PinasEvent): 'info' | 'warning' | 'error' | 'success' {
	const d = e.data ?? {};
	if (e.type === 'notification.new') return d.level ?? 'info';
	if (e.type === 'task.progress' && d.error) return 'error';
	if (e.type.endsWith('removed') || e.type.endsWith('deleted')) return 'warning';
	return 'info';
}

/**
 * Whether an event belongs in logs and lists: not the intermediate steps of a task, nor
 * a plug's every reading (one a second per plug; the event log does not keep them).
 */
export function worthListing(e: PinasEvent): boolean {
	return !(e.type === 'task.progress' && !e.data?.done) && e.type !== 'power.reading';
}
