/** One function per API endpoint the UI calls; see `types.ts` for shapes. */
import { request, type RequestOptions } from './client';
import type {
	Disk,
	FolderListing,
	FormatRequest,
	Group,
	GroupUpdate,
	NewGroup,
	NewShare,
	NewUser,
	ShareUpdate,
	TaskStarted,
	UserUpdate,
	PinasEvent,
	Service,
	Session,
	SetupRequest,
	SetupStatus,
	Share,
	SystemInfo,
	UserAccount,
	DnsBlocking,
	DnsBlockingInput,
	DnsBlocklist,
	DnsBlocklistInput,
	DnsBlocklistPatch,
	DnsForward,
	DnsForwardInput,
	DnsLoadReport,
	DnsLogQuery,
	DnsLogRow,
	DnsPiholeToken,
	DnsRecord,
	DnsRecordInput,
	DnsRule,
	DnsRuleInput,
	DnsSettings,
	DnsSettingsState,
	DnsStats,
	DnsSwitch,
	DnsSwitchInput,
	DnsUpstream,
	CompanionFlush,
	CompanionInbox,
	CompanionPairing,
	CompanionPeriod,
	CompanionSettings,
	CompanionSettingsView,
	CompanionSnapshotView,
	CompanionStateRow,
	CompanionStatus,
	CompanionToken,
	CompanionUsageBucket,
	CompanionWake,
	RemoteSettingsInput,
	RemoteSettingsView,
	RemoteStatus,
	PowerDiscoverRequest,
	PowerFound,
	PowerNas,
	PowerNewPlug,
	PowerPeriod,
	PowerPlug,
	PowerPlugChange,
	PowerResolution,
	PowerSeries,
	PowerSettingsView,
	PowerUsage
} from './types';

export * from './client';
export type * from './types';

const enc = encodeURIComponent;

/** `?a=1&b=x` from the set (non-empty) values, or '' when there are none. */
export function queryString(q: Record<string, string | number | null | undefined>): string {
	const parts = Object.entries(q)
		.filter(([, v]) => v !== undefined && v !== null && v !== '')
		.map(([k, v]) => `${enc(k)}=${enc(String(v))}`);
	return parts.length ? `?${parts.join('&')}` : '';
}

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
		format: (body: FormatRequest) => request<TaskStarted>('POST', '/api/storage/format', body),
		folders: (path?: string | null) =>
			request<FolderListing>('GET', path ? `/api/storage/folders?path=${enc(path)}` : '/api/storage/folders')
	},
	shares: {
		list: () => request<Share[]>('GET', '/api/shares'),
		create: (s: NewShare) => request<Share>('POST', '/api/shares', s),
		update: (id: Share['id'], s: ShareUpdate) => request<Share>('PUT', `/api/shares/${enc(String(id))}`, s),
		remove: (id: Share['id']) => request<void>('DELETE', `/api/shares/${enc(String(id))}`)
	},
	users: {
		list: () => request<UserAccount[]>('GET', '/api/users'),
		create: (u: NewUser) => request<UserAccount>('POST', '/api/users', u),
		update: (name: string, u: UserUpdate) => request<UserAccount>('PUT', `/api/users/${enc(name)}`, u),
		remove: (name: string) => request<void>('DELETE', `/api/users/${enc(name)}`)
	},
	groups: {
		list: () => request<Group[]>('GET', '/api/groups'),
		create: (g: NewGroup) => request<Group>('POST', '/api/groups', g),
		update: (name: string, g: GroupUpdate) => request<Group>('PUT', `/api/groups/${enc(name)}`, g),
		remove: (name: string) => request<void>('DELETE', `/api/groups/${enc(name)}`)
	},
	dns: {
		records: () => request<DnsRecord[]>('GET', '/api/dns/records'),
		addRecord: (r: DnsRecordInput) => request<DnsRecord>('POST', '/api/dns/records', r),
		updateRecord: (id: number, r: DnsRecordInput) => request<DnsRecord>('PUT', `/api/dns/records/${id}`, r),
		removeRecord: (id: number) => request<void>('DELETE', `/api/dns/records/${id}`),
		forwards: () => request<DnsForward[]>('GET', '/api/dns/forwards'),
		addForward: (f: DnsForwardInput) => request<DnsForward>('POST', '/api/dns/forwards', f),
		removeForward: (id: number) => request<void>('DELETE', `/api/dns/forwards/${id}`),
		switchState: () => request<DnsSwitch>('GET', '/api/dns/switch'),
		flip: (s: DnsSwitchInput) => request<DnsSwitch>('POST', '/api/dns/switch', s),
		blocklists: () => request<DnsBlocklist[]>('GET', '/api/dns/blocklists'),
		addBlocklist: (b: DnsBlocklistInput) => request<DnsLoadReport>('POST', '/api/dns/blocklists', b),
		updateBlocklist: (id: number, p: DnsBlocklistPatch) => request<DnsLoadReport>('PUT', `/api/dns/blocklists/${id}`, p),
		removeBlocklist: (id: number) => request<void>('DELETE', `/api/dns/blocklists/${id}`),
		updateBlocklists: () => request<DnsLoadReport>('POST', '/api/dns/blocklists/update'),
		rules: () => request<DnsRule[]>('GET', '/api/dns/rules'),
		addRule: (r: DnsRuleInput) => request<DnsRule>('POST', '/api/dns/rules', r),
		removeRule: (id: number) => request<void>('DELETE', `/api/dns/rules/${id}`),
		querylog: (q: DnsLogQuery = {}) => request<DnsLogRow[]>('GET', '/api/dns/querylog' + queryString(q)),
		stats: (hours = 24, top = 10) => request<DnsStats>('GET', '/api/dns/stats' + queryString({ hours, top })),
		upstreams: () => request<DnsUpstream[]>('GET', '/api/dns/upstreams'),
		flushCache: () => request<void>('POST', '/api/dns/cache/flush'),
		blocking: () => request<DnsBlocking>('GET', '/api/dns/blocking'),
		setBlocking: (b: DnsBlockingInput) => request<DnsBlocking>('POST', '/api/dns/blocking', b),
		settings: () => request<DnsSettingsState>('GET', '/api/dns/settings'),
		saveSettings: (s: DnsSettings) => request<DnsSettingsState>('PUT', '/api/dns/settings', s),
		piholeToken: () => request<DnsPiholeToken>('GET', '/api/dns/pihole/token'),
		newPiholeToken: () => request<DnsPiholeToken>('POST', '/api/dns/pihole/token')
	},
	power: {
		plugs: () => request<PowerPlug[]>('GET', '/api/power/plugs'),
		addPlug: (p: PowerNewPlug) => request<PowerPlug>('POST', '/api/power/plugs', p),
		changePlug: (id: number, p: PowerPlugChange) => request<PowerPlug>('PATCH', `/api/power/plugs/${id}`, p),
		removePlug: (id: number) => request<void>('DELETE', `/api/power/plugs/${id}`),
		switchPlug: (id: number, on: boolean) => request<PowerPlug>('POST', `/api/power/plugs/${id}/switch`, { on }),
		samples: (id: number, q: { from_ms?: number; to_ms?: number; resolution?: PowerResolution } = {}) =>
			request<PowerSeries>('GET', `/api/power/plugs/${id}/samples` + queryString(q)),
		usage: (id: number, q: { period?: PowerPeriod; from_ms?: number; to_ms?: number } = {}) =>
			request<PowerUsage>('GET', `/api/power/plugs/${id}/usage` + queryString(q)),
		discover: (r: PowerDiscoverRequest) => request<PowerFound[]>('POST', '/api/power/discover', r),
		nas: () => request<PowerNas>('GET', '/api/power/nas'),
		settings: () => request<PowerSettingsView>('GET', '/api/power/settings')
	},
	companion: {
		status: () => request<CompanionStatus>('GET', '/api/companion/status'),
		settings: () => request<CompanionSettingsView>('GET', '/api/companion/settings'),
		saveSettings: (s: CompanionSettings) => request<CompanionSettingsView>('PUT', '/api/companion/settings', s),
		pairing: () => request<CompanionPairing>('GET', '/api/companion/pairing'),
		newToken: () => request<CompanionToken>('POST', '/api/companion/pairing/token'),
		wake: () => request<CompanionWake>('POST', '/api/companion/wake'),
		history: (days = 7) => request<CompanionStateRow[]>('GET', '/api/companion/history' + queryString({ days })),
		usage: (period: CompanionPeriod, count: number) =>
			request<CompanionUsageBucket[]>('GET', '/api/companion/usage' + queryString({ period, count })),
		inbox: () => request<CompanionInbox>('GET', '/api/companion/inbox'),
		flushInbox: () => request<CompanionFlush>('POST', '/api/companion/inbox/flush'),
		snapshot: () => request<CompanionSnapshotView>('GET', '/api/companion/snapshot')
	},
	/** The companion's remote share with local fallback (the spool). */
	remote: {
		status: () => request<RemoteStatus>('GET', '/api/storage/remote/status'),
		reset: () => request<RemoteStatus>('POST', '/api/storage/remote/reset'),
		settings: () => request<RemoteSettingsView>('GET', '/api/storage/remote/settings'),
		saveSettings: (s: RemoteSettingsInput) => request<RemoteSettingsView>('PUT', '/api/storage/remote/settings', s)
	},
	events: {
		recent: (limit = 100) => request<PinasEvent[]>('GET', `/api/events?limit=${limit}`)
	}
};
