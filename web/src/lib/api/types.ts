/**
 * Shapes of the PiNAS HTTP API as the UI uses them.
 *
 * Once `src/lib/api/schema.d.ts` is generated from the server's
 * `/api/openapi.json` (`npm run gen:api`), these aliases point into it, so a
 * change in the server breaks `npm run check` instead of the running UI.
 */

export type Role = 'admin' | 'user';
export type SystemRole = 'nas' | 'companion';

export interface User {
	name: string;
	role: Role;
}

export interface Session {
	user: User;
	csrf_token: string;
}

export interface SetupStatus {
	done: boolean;
}

export interface SetupRequest {
	admin: { username: string; password: string };
	hostname: string;
	timezone: string;
	roles: SystemRole[];
}

export interface Memory {
	total_bytes: number;
	used_bytes: number;
	available_bytes: number;
}

export interface NetworkCounters {
	name: string;
	rx_bytes: number;
	tx_bytes: number;
}

export interface SystemInfo {
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

export interface Service {
	name: string;
	state: 'running' | 'stopped' | 'unavailable';
	detail: string;
}

export interface Filesystem {
	fs_type: string;
	label: string;
	uuid: string;
	mount_point: string | null;
	used_bytes: number | null;
	free_bytes: number | null;
}

export interface Partition {
	name: string;
	path: string;
	size_bytes: number;
	filesystem: Filesystem | null;
}

export interface Disk {
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
}

export interface FolderListing {
	path: string | null;
	entries: { name: string; path: string }[];
}

export interface Share {
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

export type ShareInput = Omit<Share, 'id'>;

export interface UserAccount {
	name: string;
	role: Role;
	groups: string[];
}

export interface NewUser extends UserAccount {
	password: string;
}

export interface Group {
	name: string;
	description: string;
	members: string[];
}

export interface TaskProgress {
	task_id: string;
	label: string;
	percent: number;
	done: boolean;
	error: string | null;
}

export interface Notification {
	level: 'info' | 'warning' | 'error' | 'success';
	title: string;
	message: string;
}

/** One event from `/api/events` or the `/api/ws` stream. */
export interface PinasEvent {
	type: string;
	/** RFC 3339 timestamp, or seconds since the epoch. */
	ts: string | number;
	data: any;
}
