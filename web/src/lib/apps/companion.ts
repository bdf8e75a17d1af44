/**
 * Pure helpers of the Companion app, the NAS dashboard and the NAS-state widget: state
 * words, ages ("3 h ago"), usage bars and the settings form. Unit tested in
 * companion.test.ts.
 */
import type { CompanionNasState, CompanionSettings, CompanionUsageBucket, RemoteKind, RemoteSettingsInput, RemoteSettingsView } from '$lib/api';

export const STATE_WORDS: Record<CompanionNasState, string> = {
	online: 'Online',
	going_offline: 'Going offline',
	offline: 'Offline',
	waking: 'Waking',
	coming_online: 'Coming online',
	unreachable: 'Unreachable'
};

/** The badge class of a state: ok (up), warn (on its way), danger (not answering). */
export function stateTone(s: CompanionNasState | null | undefined): '' | 'ok' | 'warn' | 'danger' {
	if (s === 'online') return 'ok';
	if (s === 'waking' || s === 'coming_online' || s === 'going_offline') return 'warn';
	if (s === 'unreachable') return 'danger';
	return '';
}

export function stateWord(s: CompanionNasState | null | undefined): string {
	return s ? STATE_WORDS[s] : 'Not known yet';
}

/** How long ago: "just now", "45 s ago", "12 min ago", "3 h ago", "2 d ago". */
export function ago(ms: number | null | undefined, now: number): string {
	if (ms == null) return 'never';
	const s = Math.max(0, Math.round((now - ms) / 1000));
	if (s < 5) return 'just now';
	if (s < 60) return `${s} s ago`;
	if (s < 3600) return `${Math.floor(s / 60)} min ago`;
	if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
	return `${Math.floor(s / 86400)} d ago`;
}

export type UsagePeriod = 'day' | 'week' | 'month';

/** The label of a usage period starting at `startMs` (UTC, as the API counts). */
export function periodLabel(period: UsagePeriod, startMs: number): string {
	const d = new Date(startMs);
	if (period === 'month') return d.toLocaleDateString('en-GB', { month: 'short', year: 'numeric', timeZone: 'UTC' });
	const day = d.toLocaleDateString('en-GB', { day: 'numeric', month: 'short', timeZone: 'UTC' });
	return period === 'week' ? `week of ${day}` : day;
}

export interface UsageBar {
	label: string;
	start_ms: number;
	up_secs: number;
	starts: number;
	longest_up_secs: number;
	/** Share of the period the NAS was up, 0 to 1; the current period counts up to now. */
	fraction: number;
}

/** The usage API's buckets as bars: the share of each period (up to now) the NAS ran. */
export function usageBars(buckets: CompanionUsageBucket[], period: UsagePeriod, now: number): UsageBar[] {
	return buckets.map((b) => {
		const length = Math.max(1, (Math.min(b.end_ms, now) - b.start_ms) / 1000);
		return {
			label: periodLabel(period, b.start_ms),
			start_ms: b.start_ms,
			up_secs: b.up_secs,
			starts: b.starts,
			longest_up_secs: b.longest_up_secs,
			fraction: Math.max(0, Math.min(1, b.up_secs / length))
		};
	});
}

/** The settings form: every field as text, as the inputs hold them. */
export interface SettingsDraft {
	nas_name: string;
	nas_mac: string;
	nas_ip: string;
	health_url: string;
	heartbeat_interval_secs: string;
	misses_before_takeover: string;
	wake_timeout_secs: string;
	inbox_target: string;
}

export function settingsDraft(s: CompanionSettings): SettingsDraft {
	return {
		nas_name: s.nas_name,
		nas_mac: s.nas_mac,
		nas_ip: s.nas_ip,
		health_url: s.health_url,
		heartbeat_interval_secs: String(s.heartbeat_interval_secs),
		misses_before_takeover: String(s.misses_before_takeover),
		wake_timeout_secs: String(s.wake_timeout_secs),
		inbox_target: s.inbox_target
	};
}

const NUMBERS = ['heartbeat_interval_secs', 'misses_before_takeover', 'wake_timeout_secs'] as const;

/** Fields that are not whole numbers; the server checks everything else and its ranges. */
export function draftErrors(d: SettingsDraft): Record<string, string> {
	const e: Record<string, string> = {};
	for (const k of NUMBERS) if (!/^\d+$/.test(d[k].trim())) e[k] = 'Enter a whole number.';
	return e;
}

/** The PUT body; the SecureOn password is left out, so the server keeps it. */
export function settingsBody(d: SettingsDraft): CompanionSettings {
	return {
		nas_name: d.nas_name.trim(),
		nas_mac: d.nas_mac.trim(),
		nas_ip: d.nas_ip.trim(),
		health_url: d.health_url.trim(),
		heartbeat_interval_secs: Number(d.heartbeat_interval_secs),
		misses_before_takeover: Number(d.misses_before_takeover),
		wake_timeout_secs: Number(d.wake_timeout_secs),
		inbox_target: d.inbox_target.trim()
	};
}

/** The remote share's form: every field as text; the password starts empty, always. */
export interface RemoteDraft {
	enabled: boolean;
	kind: RemoteKind;
	server: string;
	/** Empty: the protocol's own (SMB 445, NFS 2049). */
	port: string;
	share: string;
	username: string;
	/** Empty: keep the stored password (it is write-only and never shown back). */
	password: string;
	/** Ticked: remove the stored password (a guest mount, or an account without one). */
	clear_password: boolean;
	version: string;
}

export function remoteDraft(s: RemoteSettingsView): RemoteDraft {
	return {
		enabled: s.enabled,
		kind: s.kind,
		server: s.server,
		port: s.port == null ? '' : String(s.port),
		share: s.share,
		username: s.username ?? '',
		password: '',
		clear_password: false,
		version: s.version ?? ''
	};
}

/**
 * The PUT body: the password only when one was typed (left out, the server keeps the
 * stored one; `""` removes it); no user name nor password for NFS; an empty version is
 * the default of the kind.
 */
export function remoteBody(d: RemoteDraft): RemoteSettingsInput {
	// a port that is not a number goes as 0, which the server explains at the field
	const smb = d.kind === 'smb';
	const body: RemoteSettingsInput = {
		enabled: d.enabled,
		kind: d.kind,
		server: d.server.trim(),
		port: d.port.trim() ? (/^\d{1,5}$/.test(d.port.trim()) ? Number(d.port.trim()) : 0) : null,
		share: d.share.trim(),
		username: smb ? d.username.trim() : '',
		version: d.version.trim() || null
	};
	if (!smb || d.clear_password) body.password = '';
	else if (d.password) body.password = d.password;
	return body;
}
