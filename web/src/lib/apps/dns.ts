/**
 * DNS app helpers: input checks that give the same words as the server before a
 * request is sent, and the geometry of the queries-over-time chart.
 */
import type { DnsBlockingMode, DnsBucket, DnsRecordType, DnsSettings } from '$lib/api';

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/i;

/** Why `name` is not a DNS name (`printer.home`), or null. `wildcard` allows `*.lab.home`. */
export function nameError(name: string, wildcard = false): string | null {
	let n = name.trim().replace(/\.$/, '');
	if (!n) return 'Enter a name.';
	if (wildcard && n.startsWith('*.')) n = n.slice(2);
	if (n.includes('*')) return wildcard ? 'A wildcard is only allowed as the first label, as in *.lab.home.' : 'A wildcard is not allowed here.';
	if (n.length > 253) return 'The name is longer than 253 characters.';
	for (const label of n.split('.')) {
		if (!label) return 'The name has an empty part (two dots in a row).';
		if (label.length > 63) return `The part "${label.slice(0, 20)}…" is longer than 63 characters.`;
		if (!LABEL.test(label)) return `The part "${label}" may only hold letters, digits and hyphens, and not start or end with a hyphen.`;
	}
	return null;
}

export function isIPv4(s: string): boolean {
	const parts = s.split('.');
	return parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255);
}

export function isIPv6(s: string): boolean {
	if (!s.includes(':') || !/^[0-9a-f:.]+$/i.test(s)) return false;
	let head = s;
	let groupsForV4 = 0;
	const lastColon = s.lastIndexOf(':');
	if (s.slice(lastColon + 1).includes('.')) {
		if (!isIPv4(s.slice(lastColon + 1))) return false;
		head = s.slice(0, lastColon + 1) + '0';
		groupsForV4 = 1; // the IPv4 tail takes two groups; '0' stands for one
	}
	const dbl = head.split('::');
	if (dbl.length > 2) return false;
	const groups = (x: string) => (x ? x.split(':') : []);
	const all = [...groups(dbl[0]), ...(dbl.length === 2 ? groups(dbl[1]) : [])];
	if (!all.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return false;
	const n = all.length + groupsForV4;
	return dbl.length === 2 ? n < 8 : n === 8;
}

export interface RecordDraft {
	name: string;
	type: DnsRecordType;
	value: string;
	ttl: string;
}

/** Field → message for a local record, as the form shows them. */
export function recordErrors(r: RecordDraft): Record<string, string> {
	const e: Record<string, string> = {};
	const ne = nameError(r.name, true);
	if (ne) e.name = ne;
	const v = r.value.trim();
	if (!v) e.value = r.type === 'A' || r.type === 'AAAA' ? 'Enter an address.' : 'Enter the target name.';
	else if (r.type === 'A' && !isIPv4(v)) e.value = `${v} is not an IPv4 address (like 192.168.1.20).`;
	else if (r.type === 'AAAA' && !isIPv6(v)) e.value = `${v} is not an IPv6 address (like fd00::20).`;
	else if ((r.type === 'CNAME' || r.type === 'PTR') && nameError(v)) e.value = `Target: ${nameError(v)}`;
	if (r.ttl.trim()) {
		const t = Number(r.ttl);
		if (!Number.isInteger(t) || t < 0 || t > 604800) e.ttl_secs = 'The TTL is a whole number of seconds from 0 to 604800.';
	}
	return e;
}

/** Allow/deny pattern: `name` or `*.name`. */
export function patternError(p: string): string | null {
	return nameError(p, true);
}

/** Conditional forward: a domain or an IPv4 network (/8, /16, /24), and a server address. */
export function forwardErrors(domain: string, server: string): Record<string, string> {
	const e: Record<string, string> = {};
	const d = domain.trim();
	const net = d.match(/^([\d.]+)\/(\d+)$/);
	if (net) {
		if (!isIPv4(net[1])) e.domain = `${net[1]} is not an IPv4 network address.`;
		else if (!['8', '16', '24'].includes(net[2])) e.domain = 'Only /8, /16 and /24 networks have a reverse zone.';
	} else {
		const ne = nameError(d);
		if (ne) e.domain = ne;
	}
	const s = server.trim().replace(/^(udp|tcp):\/\//, '');
	const host = s.replace(/^\[(.*)\](:\d+)?$/, '$1').replace(/^([\d.]+):\d+$/, '$1');
	if (!s) e.server = 'Enter the address of the server, e.g. the router 192.168.1.1.';
	else if (!isIPv4(host) && !isIPv6(host)) e.server = `${server.trim()} is not an IP address.`;
	return e;
}

export function blocklistUrlError(url: string): string | null {
	const u = url.trim();
	if (!u) return 'Enter the address of the list.';
	if (u.startsWith('/')) return null;
	if (!/^(https?:\/\/[^\s/]+|file:\/\/\/)\S*$/i.test(u)) return 'Use an https://, http:// or file:/// address, or an absolute path.';
	return null;
}

export interface ChartBar {
	x: number;
	width: number;
	/** Height and top of the allowed (not blocked) part. */
	allowedY: number;
	allowedH: number;
	blockedY: number;
	blockedH: number;
	bucket: DnsBucket;
}

export interface ChartGeometry {
	bars: ChartBar[];
	max: number;
	/** A round upper bound for the scale, ≥ max. */
	top: number;
}

/** 1, 2, 5, 10, 20, 50… at or above n. */
export function niceCeil(n: number): number {
	if (n <= 0) return 1;
	const p = 10 ** Math.floor(Math.log10(n));
	for (const m of [1, 2, 5, 10]) if (m * p >= n) return m * p;
	return 10 * p;
}

/**
 * The buckets of a whole period, oldest first: the server sends only the buckets
 * that had queries, so the empty ones in between are added with zeros. Buckets
 * that fall into the same slot are summed.
 */
export function fillBuckets(buckets: DnsBucket[], sinceMs: number, bucketSecs: number, nowMs: number, maxSlots = 1000): DnsBucket[] {
	const step = Math.max(1, bucketSecs) * 1000;
	let start = Math.floor(sinceMs / step) * step;
	const end = Math.floor(nowMs / step) * step;
	if (end < start) return buckets;
	// a very long period with small buckets: keep the most recent slots
	if ((end - start) / step + 1 > maxSlots) start = end - (maxSlots - 1) * step;
	const n = (end - start) / step + 1;
	const out: DnsBucket[] = Array.from({ length: n }, (_, i) => ({ ts_ms: start + i * step, total: 0, blocked: 0 }));
	for (const b of buckets) {
		const i = Math.floor((b.ts_ms - start) / step);
		if (i < 0 || i >= n) continue;
		out[i].total += b.total;
		out[i].blocked += b.blocked;
	}
	return out;
}

/** Stacked bars (blocked at the bottom, allowed above) filling width × height. */
export function chartGeometry(buckets: DnsBucket[], width: number, height: number, gap = 1): ChartGeometry {
	const max = buckets.reduce((m, b) => Math.max(m, b.total), 0);
	const top = niceCeil(max);
	const slot = buckets.length ? width / buckets.length : width;
	const bw = Math.max(1, slot - gap);
	const bars = buckets.map((b, i) => {
		const blocked = Math.min(b.blocked, b.total);
		const blockedH = (blocked / top) * height;
		const allowedH = ((b.total - blocked) / top) * height;
		return {
			x: i * slot,
			width: bw,
			blockedY: height - blockedH,
			blockedH,
			allowedY: height - blockedH - allowedH,
			allowedH,
			bucket: b
		};
	});
	return { bars, max, top };
}

export const STATUS_WORDS: Record<string, string> = {
	forwarded: 'Forwarded',
	cached: 'From cache',
	blocked: 'Blocked',
	local: 'Local record',
	error: 'Error'
};

/** Time left until `untilSecs` (Unix seconds): `4:59`, `1:02:03`; `0:00` once passed. */
export function countdown(untilSecs: number, nowMs: number): string {
	const left = Math.max(0, Math.floor(untilSecs - nowMs / 1000));
	const h = Math.floor(left / 3600);
	const m = Math.floor((left % 3600) / 60);
	const sec = String(left % 60).padStart(2, '0');
	return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** The settings form: upstreams and allowed networks one per line, numbers as typed. */
export interface SettingsDraft {
	upstreams: string;
	allowed_networks: string;
	rate_limit_per_sec: string;
	rate_limit_slip: string;
	cache_size: string;
	cache_min_ttl_secs: string;
	cache_max_ttl_secs: string;
	negative_ttl_secs: string;
	blocking_mode: DnsBlockingMode;
	query_log_retention_days: string;
}

export function settingsDraft(s: DnsSettings): SettingsDraft {
	return {
		upstreams: s.upstreams.join('\n'),
		// absent in settings saved by earlier versions: the server then answers the home network only
		allowed_networks: (s.allowed_networks ?? ['local']).join('\n'),
		rate_limit_per_sec: String(s.rate_limit_per_sec ?? 1000),
		rate_limit_slip: String(s.rate_limit_slip ?? 2),
		cache_size: String(s.cache_size),
		cache_min_ttl_secs: String(s.cache_min_ttl_secs),
		cache_max_ttl_secs: String(s.cache_max_ttl_secs),
		negative_ttl_secs: String(s.negative_ttl_secs),
		blocking_mode: s.blocking_mode,
		query_log_retention_days: String(s.query_log_retention_days)
	};
}

/** The lines of a one-per-line field (upstreams, allowed networks), trimmed, without empty lines. */
export const upstreamLines = (text: string) =>
	text
		.split('\n')
		.map((l) => l.trim())
		.filter(Boolean);

/** The entry of the allowed networks that stands for the home network. */
export const LOCAL_NETWORKS = 'local';

// The shape of an address or network; the server checks the numbers and answers with the field.
const NETWORK = /^[0-9a-f:.]+(\/\d+)?$/i;

const UPSTREAM = /^(\d{1,3}(\.\d{1,3}){3}|\[?[0-9a-f:.]+\]?|(udp|tcp):\/\/\S+|tls:\/\/\S+|https:\/\/[^\s/]+\S*)$/i;

/**
 * Field → message for the settings form, the checks the server makes that can be
 * made here (it checks upstream addresses fully and answers with the field).
 */
export function settingsErrors(d: SettingsDraft): Record<string, string> {
	const e: Record<string, string> = {};
	const ups = upstreamLines(d.upstreams);
	if (ups.length === 0) e.upstreams = 'Add at least one upstream server.';
	else if (ups.length > 16) e.upstreams = 'At most 16 upstream servers.';
	else {
		const bad = ups.find((u) => !UPSTREAM.test(u));
		if (bad) e.upstreams = `${bad} is not an upstream: use an IP address, udp://, tcp://, tls:// or https://.`;
	}
	const num = (k: keyof SettingsDraft, min: number, max: number, words: string) => {
		const n = Number(String(d[k]).trim());
		if (String(d[k]).trim() === '' || !Number.isInteger(n) || n < min || n > max) e[k] = `${words} is a whole number from ${min.toLocaleString()} to ${max.toLocaleString()}.`;
		return n;
	};
	num('cache_size', 1, 1_000_000, 'The cache size');
	const min = num('cache_min_ttl_secs', 0, 604_800, 'The shortest time');
	const max = num('cache_max_ttl_secs', 1, 604_800, 'The longest time');
	if (!e.cache_min_ttl_secs && !e.cache_max_ttl_secs && min > max) e.cache_min_ttl_secs = 'The shortest time is above the longest.';
	num('negative_ttl_secs', 0, 604_800, 'The time for negative answers');
	num('query_log_retention_days', 1, 365, 'The number of days');
	const nets = upstreamLines(d.allowed_networks);
	if (nets.length === 0) e.allowed_networks = 'Add at least one network ("local" for the home network).';
	else if (nets.length > 64) e.allowed_networks = 'At most 64 networks.';
	else {
		const bad = nets.find((n) => n.toLowerCase() !== LOCAL_NETWORKS && !NETWORK.test(n));
		if (bad) e.allowed_networks = `${bad} is not a network: use "local", an address, or a network such as 192.168.1.0/24.`;
	}
	num('rate_limit_per_sec', 0, 1_000_000, 'The rate limit');
	num('rate_limit_slip', 0, 10, 'The slip');
	return e;
}

/** The request body for `PUT /api/dns/settings` from a draft that passed `settingsErrors`. */
export function settingsBody(d: SettingsDraft): DnsSettings {
	return {
		upstreams: upstreamLines(d.upstreams),
		cache_size: Number(d.cache_size),
		cache_min_ttl_secs: Number(d.cache_min_ttl_secs),
		cache_max_ttl_secs: Number(d.cache_max_ttl_secs),
		negative_ttl_secs: Number(d.negative_ttl_secs),
		blocking_mode: d.blocking_mode,
		query_log_retention_days: Number(d.query_log_retention_days),
		allowed_networks: upstreamLines(d.allowed_networks),
		rate_limit_per_sec: Number(d.rate_limit_per_sec),
		rate_limit_slip: Number(d.rate_limit_slip)
	};
}
