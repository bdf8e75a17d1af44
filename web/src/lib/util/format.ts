/** Formatting of sizes, rates, durations and times for display. */

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];

/** 1536 → "1.5 KB" (powers of 1024, as file managers show them). */
export function bytes(n: number | null | undefined, digits = 1): string {
	if (n == null || !Number.isFinite(n)) return '–';
	let v = Math.abs(n);
	let i = 0;
	while (v >= 1024 && i < UNITS.length - 1) {
		v /= 1024;
		i++;
	}
	const s = i === 0 ? String(Math.round(v)) : v.toFixed(v >= 100 ? 0 : digits);
	return `${n < 0 ? '-' : ''}${s} ${UNITS[i]}`;
}

export function rate(bytesPerSec: number | null | undefined): string {
	return `${bytes(bytesPerSec ?? 0)}/s`;
}

/** 93784 → "1 d 2 h 3 min". */
export function duration(secs: number | null | undefined): string {
	if (secs == null || !Number.isFinite(secs)) return '–';
	const s = Math.floor(secs);
	const d = Math.floor(s / 86400);
	const h = Math.floor((s % 86400) / 3600);
	const m = Math.floor((s % 3600) / 60);
	const parts = [];
	if (d) parts.push(`${d} d`);
	if (h) parts.push(`${h} h`);
	if (m || parts.length === 0) parts.push(`${m} min`);
	return parts.join(' ');
}

export function percent(used: number | null | undefined, total: number | null | undefined): number {
	if (!used || !total) return 0;
	return Math.max(0, Math.min(100, (used / total) * 100));
}

/** Accepts RFC 3339 strings and seconds (or milliseconds) since the epoch. */
export function toDate(ts: string | number): Date {
	if (typeof ts === 'number') return new Date(ts < 1e12 ? ts * 1000 : ts);
	return new Date(ts);
}

export function time(ts: string | number): string {
	const d = toDate(ts);
	if (Number.isNaN(d.getTime())) return String(ts);
	return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}
