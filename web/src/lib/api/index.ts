/** One function per API endpoint the UI calls; see `types.ts` for shapes. */
import { request, type RequestOptions } from './client';
import type {
	Disk,
	FolderListing,
	Group,
	NewUser,
	PinasEvent,
	Service,
	Session,
	SetupRequest,
	SetupStatus,
	Share,
	ShareInput,
	SystemInfo,
	UserAccount
} from './types';

export * from './client';
export type * from './types';

const enc = encodeURIComponent;

export const api = {
	setup: {
		status: () => request<SetupStatus>('GET', '/api/setup', undefined, { quiet: true }),
		run: (req: SetupRequest) => request<Session>('POST', '/api/setup', req, { quiet: true }),
		timezones: () => request<string[]>('GET', '/api/system/timezones', undefined, { quiet: true })
	},
	auth: {
		login: (username: string, password: string) =>
			request<Session>('POST', '/api/auth/login', { username, password }, { quiet: true }),
		me: (opts?: RequestOptions) => request<Session>('GET', '/api/auth/me', undefined, { quiet: true, ...opts }),
		logout: () => request<void>('POST', '/api/auth/logout', {}, { quiet: true }),
		preferences: () => request<Record<string, unknown>>('GET', '/api/auth/me/preferences'),
		savePreferences: (prefs: Record<string, unknown>) =>
			request<unknown>('PUT', '/api/auth/me/preferences', prefs)
	},
	system: {
		info: () => request<SystemInfo>('GET', '/api/system/info'),
		services: () => request<Service[]>('GET', '/api/system/services'),
		reboot: () => request<unknown>('POST', '/api/system/reboot', {}),
		shutdown: () => request<unknown>('POST', '/api/system/shutdown', {})
	},
	storage: {
		disks: () => request<Disk[]>('GET', '/api/storage/disks'),
		mount: (uuid: string) => request<unknown>('POST', '/api/storage/mount', { uuid }),
		unmount: (uuid: string, force = false) => request<unknown>('POST', '/api/storage/unmount', { uuid, force }),
		format: (device: string, fs_type: string, label: string, confirm: string) =>
			request<{ task_id: string }>('POST', '/api/storage/format', { device, fs_type, label, confirm }),
		folders: (path?: string | null) =>
			request<FolderListing>('GET', path ? `/api/storage/folders?path=${enc(path)}` : '/api/storage/folders')
	},
	shares: {
		list: () => request<Share[]>('GET', '/api/shares'),
		create: (s: ShareInput) => request<Share>('POST', '/api/shares', s),
		update: (id: string, s: ShareInput) => request<Share>('PUT', `/api/shares/${enc(id)}`, s),
		remove: (id: string) => request<void>('DELETE', `/api/shares/${enc(id)}`)
	},
	users: {
		list: () => request<UserAccount[]>('GET', '/api/users'),
		create: (u: NewUser) => request<UserAccount>('POST', '/api/users', u),
		update: (name: string, u: Partial<NewUser>) => request<UserAccount>('PUT', `/api/users/${enc(name)}`, u),
		remove: (name: string) => request<void>('DELETE', `/api/users/${enc(name)}`)
	},
	groups: {
		list: () => request<Group[]>('GET', '/api/groups'),
		create: (g: Group) => request<Group>('POST', '/api/groups', g),
		update: (name: string, g: Partial<Group>) => request<Group>('PUT', `/api/groups/${enc(name)}`, g),
		remove: (name: string) => request<void>('DELETE', `/api/groups/${enc(name)}`)
	},
	events: {
		recent: (limit = 100) => request<PinasEvent[]>('GET', `/api/events?limit=${limit}`)
	}
};
