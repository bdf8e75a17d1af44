/**
 * Shapes of the PiNAS HTTP API as the UI uses them.
 *
 * `schema.d.ts` is generated from the server's `/api/openapi.json`
 * (`npm run gen:api`; `tests/ui/run` regenerates it from the freshly built
 * server and type-checks the UI against it). Every shape the server documents
 * is taken from there, so a change in the server breaks `npm run check`
 * instead of the running UI. The hand-written shapes below are used only for
 * endpoints the server does not document yet; `FromServer` switches to the
 * generated one as soon as it exists.
 */
import type { components } from './schema';

type Schemas = components['schemas'];
/** The server's schema `K` when the OpenAPI document has one, else `Fallback`. */
type FromServer<K extends string, Fallback> = K extends keyof Schemas ? Schemas[K] : Fallback;

export type Role = FromServer<'Role', 'admin' | 'user'>;
export type SystemRole = 'nas' | 'companion';

export type User = FromServer<'Account', { name: string; role: Role }>;
export type Session = FromServer<'SessionInfo', { user: User; csrf_token: string }>;
export type SetupStatus = FromServer<'SetupStatus', { done: boolean }>;
export type SetupRequest = FromServer<
	'SetupRequest',
	{ admin: { username: string; password: string }; hostname: string; timezone: string; roles: SystemRole[] }
>;
export type Memory = FromServer<'Memory', { total_bytes: number; used_bytes: number; available_bytes: number }>;
export type NetworkCounters = FromServer<'InterfaceCounters', { name: string; rx_bytes: number; tx_bytes: number }>;
export type SystemInfo = FromServer<'SystemInfo', SystemInfoFallback>;
export type Service = FromServer<'ServiceStatus', ServiceFallback>;
/** One event from `/api/events` or the `/api/ws` stream (`ts` in Unix milliseconds). */
export type PinasEvent = Omit<FromServer<'Event', { type: string; ts: number; data: unknown }>, 'data'> & {
	// payloads differ per event type; the UI reads them defensively
	data: any; // eslint-disable-line @typescript-eslint/no-explicit-any
};
export type Disk = FromServer<'Disk', DiskFallback>;
export type Partition = FromServer<'Partition', PartitionFallback>;
export type Filesystem = FromServer<'Filesystem', FilesystemFallback>;
export type FolderListing = FromServer<'FolderList', FolderListingFallback>;
export type Share = FromServer<'Share', ShareFallback>;
export type ShareInput = Omit<Share, 'id'>;
export type NewShare = FromServer<'NewShare', ShareInput>;
export type ShareUpdate = FromServer<'ShareUpdate', Partial<ShareInput>>;
export type UserAccount = FromServer<'User', UserAccountFallback>;
export type NewUser = FromServer<'NewUser', UserAccount & { password: string }>;
export type UserUpdate = FromServer<'UserUpdate', Partial<NewUser>>;
export type Group = FromServer<'Group', GroupFallback>;
export type NewGroup = FromServer<'NewGroup', Group>;
export type GroupUpdate = FromServer<'GroupUpdate', Partial<Omit<Group, 'name'>>>;
export type FormatRequest = FromServer<'FormatRequest', { device: string; fs_type: string; label: string; confirm: string }>;
export type TaskStarted = FromServer<'TaskStarted', { task_id: string }>;
export type TaskProgress = FromServer<'TaskProgress', TaskProgressFallback>;
export type Notification = FromServer<'Notification', NotificationFallback>;

// Power role (`/api/power/...`, proxied by the web role)
export type PowerPlug = Schemas['PlugView'];
export type PowerNewPlug = Schemas['NewPlug'];
export type PowerPlugChange = Schemas['PlugChange'];
export type PowerSeries = Schemas['Series'];
export type PowerPoint = Schemas['Point'];
export type PowerGap = Schemas['Gap'];
export type PowerResolution = Schemas['Resolution'];
export type PowerPeriod = Schemas['PowerPeriod'];
export type PowerUsage = Schemas['Usage'];
export type PowerUsageRow = Schemas['UsageRow'];
export type PowerNas = Schemas['NasView'];
export type PowerSettingsView = Schemas['PowerSettingsView'];
export type PowerDiscoverRequest = Schemas['DiscoverRequest'];
export type PowerFound = Schemas['Found'];

// Companion role (`/api/companion/...`, proxied by the web role)
export type CompanionStatus = Schemas['CompanionStatus'];
export type CompanionNasState = Schemas['NasState'];
export type CompanionSettings = Schemas['CompanionSettings'];
export type CompanionSettingsView = Schemas['CompanionSettingsView'];
export type CompanionPairing = Schemas['PairingView'];
export type CompanionToken = Schemas['NewToken'];
export type CompanionWake = Schemas['WakeStarted'];
export type CompanionInbox = Schemas['InboxStatus'];
export type CompanionFlush = Schemas['FlushReport'];
export type CompanionPeriod = Schemas['CompanionPeriod'];
export type CompanionUsageBucket = Schemas['UsageBucket'];
export type CompanionStateRow = Schemas['StateRow'];
export type CompanionSnapshotView = Schemas['SnapshotView'];
/** The NAS's snapshot as it sent it (schema version 1); unknown fields are kept. */
export type CompanionSnapshot = Schemas['Snapshot'];
/** The remote share with local fallback (the spool), `/api/storage/remote/...`. */
export type RemoteStatus = Schemas['RemoteStatus'];
export type RemoteKind = Schemas['RemoteKind'];
export type RemoteSettingsView = Schemas['RemoteSettingsView'];
export type RemoteSettingsInput = Schemas['RemoteSettingsInput'];

// DNS role (`/api/dns/...`, proxied by the web role)
export type DnsRecordType = Schemas['LocalType'];
export type DnsRecord = Schemas['LocalRecordRow'];
export type DnsRecordInput = Schemas['RecordInput'];
export type DnsForward = Schemas['ForwardRow'];
export type DnsForwardInput = Schemas['ForwardInput'];
export type DnsSwitch = Schemas['SwitchState'];
export type DnsSwitchTarget = Schemas['Target'];
export type DnsSwitchInput = Schemas['SwitchInput'];
export type DnsBlocklist = Schemas['Blocklist'];
export type DnsBlocklistInput = Schemas['BlocklistInput'];
export type DnsBlocklistPatch = Schemas['BlocklistPatch'];
export type DnsLoadReport = Schemas['LoadReport'];
export type DnsRule = Schemas['RuleRow'];
export type DnsRuleInput = Schemas['RuleInput'];
export type DnsRuleKind = Schemas['RuleKind'];
export type DnsStats = Schemas['Stats'];
export type DnsBucket = Schemas['Bucket'];
export type DnsTop = Schemas['Top'];
export type DnsLogRow = Schemas['LogRow'];
export type DnsStatus = Schemas['Status'];
export type DnsUpstream = Schemas['UpstreamStatus'];
export type DnsBlocking = Schemas['BlockingState'];
export type DnsBlockingInput = Schemas['BlockingInput'];
export type DnsSettings = Schemas['DnsSettings'];
export type DnsSettingsState = Schemas['SettingsState'];
export type DnsBlockingMode = Schemas['BlockingMode'];
export type DnsPiholeToken = Schemas['PiholeToken'];
/** Filters and paging of `GET /api/dns/querylog`. */
export type DnsLogQuery = NonNullable<import('./schema').operations['get_querylog']['parameters']['query']>;

// ---- shapes of endpoints not yet in the OpenAPI document ----
interface SystemInfoFallback {
	version: string;
	hostname: string;
	board_model: string;
	kernel: string;
	uptime_secs: number;
	cpu_percent: number;
	load_avg: number[];
	memory: Memory;
	temperatures: { label: string; celsius: number }[];
	network: NetworkCounters[];
	roles: SystemRole[];
}

interface ServiceFallback {
	name: string;
	state: 'running' | 'stopped' | 'unavailable';
	detail: string;
}

interface FilesystemFallback {
	fs_type: string;
	label: string;
	uuid: string;
	mount_point: string | null;
	used_bytes: number | null;
	free_bytes: number | null;
}

interface PartitionFallback {
	name: string;
	path: string;
	size_bytes: number;
	filesystem: Filesystem | null;
	format_confirm: string;
}

interface DiskFallback {
	name: string;
	path: string;
	model: string;
	serial: string;
	size_bytes: number;
	transport: string;
	rotational: boolean;
	removable: boolean;
	system: boolean;
	filesystem: Filesystem | null;
	partitions: Partition[];
	format_confirm: string;
}

interface FolderListingFallback {
	path: string | null;
	entries: { name: string; path: string }[];
}

interface ShareFallback {
	id: string;
	name: string;
	path: string;
	description: string;
	read_only: boolean;
	guest_ok: boolean;
	valid_users: string[];
	smb: boolean;
	nfs: boolean;
	nfs_clients: string[];
}

interface UserAccountFallback {
	name: string;
	role: Role;
	groups: string[];
}

interface GroupFallback {
	name: string;
	description: string;
	members: string[];
}

interface TaskProgressFallback {
	task_id: string;
	label: string;
	percent: number;
	done: boolean;
	error: string | null;
}

interface NotificationFallback {
	level: 'info' | 'warning' | 'error' | 'success';
	title: string;
	message: string;
}

