/**
 * Pure helpers of the Power app and the power widget: formatting of power, energy and
 * money, weeks made of the API's days, and chart geometry. No Svelte, no fetch: unit
 * tested in power.test.ts.
 */
import type { PowerGap, PowerNas, PowerPlug, PowerPoint, PowerUsageRow } from '$lib/api';

const num = (v: number, digits: number) =>
	v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** 23.46 → "23.5 W"; 1234 → "1.23 kW"; null → "–". */
export function watts(w: number | null | undefined): string {
	if (w == null || !Number.isFinite(w)) return '–';
	if (Math.abs(w) >= 1000) return `${num(w / 1000, 2)} kW`;
	return `${num(w, Math.abs(w) >= 100 ? 0 : 1)} W`;
}

/** Energy from Wh: 850 → "850 Wh"; 12345 → "12.35 kWh"; 2.5e6 → "2,500 kWh". */
export function energy(wh: number | null | undefined): string {
	if (wh == null || !Number.isFinite(wh)) return '–';
	if (Math.abs(wh) < 1000) return `${num(wh, 0)} Wh`;
	const k = wh / 1000;
	return `${num(k, Math.abs(k) >= 1000 ? 0 : Math.abs(k) >= 100 ? 1 : 2)} kWh`;
}

/** 1.234, "EUR" → "€1.23"; a currency code Intl does not know → "1.23 XYZ". */
export function money(amount: number | null | undefined, currency: string): string {
	if (amount == null || !Number.isFinite(amount)) return '–';
	try {
		return new Intl.NumberFormat('en-US', { style: 'currency', currency, minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(amount);
	} catch {
		return `${num(amount, 2)} ${currency}`.trim();
	}
}

/** Seconds as hours and minutes, for running times: 5400 → "1 h 30 min"; 0 → "0 min". */
export function hours(secs: number): string {
	const m = Math.round(secs / 60);
	const h = Math.floor(m / 60);
	return h ? `${h} h${m % 60 ? ` ${m % 60} min` : ''}` : `${m} min`;
}

/** Local midnight of the day `ms` falls in. */
export function startOfDay(ms: number): number {
	const d = new Date(ms);
	d.setHours(0, 0, 0, 0);
	return d.getTime();
}

/** Local midnight of the Monday of the week `ms` falls in. */
export function startOfWeek(ms: number): number {
	const d = new Date(startOfDay(ms));
	d.setDate(d.getDate() - ((d.getDay() + 6) % 7));
	return d.getTime();
}

/** Local midnight of the first of the month `ms` falls in. */
export function startOfMonth(ms: number): number {
	const d = new Date(startOfDay(ms));
	d.setDate(1);
	return d.getTime();
}

/** `n` calendar months before `ms`'s month start. */
export function monthsBefore(ms: number, n: number): number {
	const d = new Date(startOfMonth(ms));
	d.setMonth(d.getMonth() - n);
	return d.getTime();
}

/** `2026-12-03` (an API day) as that calendar day at UTC midnight; NaN when not a day. */
function dayNumber(period: string): number {
	const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(period);
	return m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : Number.NaN;
}

/**
 * The API's day rows added up per week (Monday to Sunday), oldest first. Days are the
 * server's local days, so weeks are made from their dates (`period`), not from the
 * browser's clock; each week is labelled with its Monday (`2026-11-30`).
 */
export function weekRows(days: PowerUsageRow[]): PowerUsageRow[] {
	const weeks = new Map<string, PowerUsageRow>();
	for (const d of days) {
		const n = dayNumber(d.period);
		if (Number.isNaN(n)) continue;
		const monday = new Date(n - ((new Date(n).getUTCDay() + 6) % 7) * 86400_000).toISOString().slice(0, 10);
		const w = weeks.get(monday);
		if (w) {
			w.energy_wh += d.energy_wh;
			w.cost += d.cost;
			w.active_secs += d.active_secs;
			w.standby_secs += d.standby_secs;
			w.start_ms = Math.min(w.start_ms, d.start_ms);
			w.end_ms = Math.max(w.end_ms, d.end_ms);
		} else {
			weeks.set(monday, { ...d, period: monday });
		}
	}
	return [...weeks.values()].sort((a, b) => a.period.localeCompare(b.period));
}

/**
 * The label of a usage row from its `period` (`2026-12-03`, a week's Monday, or
 * `2026-12`): the server's calendar, whatever the browser's time zone.
 */
export function usageLabel(period: string, kind: 'day' | 'week' | 'month'): string {
	const m = /^(\d{4})-(\d{2})(?:-(\d{2}))?$/.exec(period);
	if (!m) return period;
	const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3] ?? 1)));
	if (kind === 'month') return d.toLocaleDateString(undefined, { month: 'short', year: 'numeric', timeZone: 'UTC' });
	const day = d.toLocaleDateString(undefined, { weekday: kind === 'day' ? 'short' : undefined, day: 'numeric', month: 'short', timeZone: 'UTC' });
	return kind === 'week' ? `week of ${day}` : day;
}

/** Sum of the rows: energy, cost and running times. */
export function totals(rows: PowerUsageRow[]) {
	return rows.reduce(
		(t, r) => ({ energy_wh: t.energy_wh + r.energy_wh, cost: t.cost + r.cost, active_secs: t.active_secs + r.active_secs, standby_secs: t.standby_secs + r.standby_secs }),
		{ energy_wh: 0, cost: 0, active_secs: 0, standby_secs: 0 }
	);
}

/** Total power of the plugs that answered; null when none did. */
export function totalWatts(plugs: PowerPlug[]): number | null {
	const known = plugs.filter((p) => p.status.online && p.status.power_w != null);
	return known.length ? known.reduce((s, p) => s + (p.status.power_w ?? 0), 0) : null;
}

/** The NAS may be running: what the server refuses to switch off (`409 nas_running`). */
export function nasMayRun(nas: PowerNas | null): boolean {
	if (!nas) return true;
	const c = nas.companion?.state;
	if (c && ['online', 'coming_online', 'going_offline', 'waking'].includes(c)) return true;
	return nas.state === 'active' || nas.state === 'unknown';
}

/** May this user be offered "Switch off" (or on) for this plug? */
export function canSwitch(p: PowerPlug, on: boolean, admin: boolean, nas: PowerNas | null): boolean {
	if (!admin || !p.switchable) return false;
	return on || !p.is_nas || !nasMayRun(nas);
}

/** Points of a power line with breaks at the gaps: one SVG path `d` per stretch. */
export function linePaths(points: PowerPoint[], gaps: PowerGap[], fromMs: number, toMs: number, w: number, h: number, top: number): string[] {
	const span = Math.max(1, toMs - fromMs);
	const x = (t: number) => ((t - fromMs) / span) * w;
	const y = (v: number) => h - (Math.max(0, v) / top) * h;
	const inGap = (a: number, b: number) => gaps.some((g) => g.start_ms < b && (g.end_ms ?? Infinity) > a);
	const out: string[] = [];
	let cur = '';
	let prev: PowerPoint | null = null;
	for (const p of points) {
		if (prev && inGap(prev.at_ms, p.at_ms)) {
			if (cur) out.push(cur);
			cur = '';
		}
		cur += `${cur ? 'L' : 'M'}${x(p.at_ms).toFixed(1)},${y(p.power_w).toFixed(1)}`;
		prev = p;
	}
	if (cur) out.push(cur);
	return out;
}

/** A round top for a chart's scale: 43 → 50, 7 → 10, 180 → 200. */
export function niceTop(max: number): number {
	if (!(max > 0)) return 1;
	const p = 10 ** Math.floor(Math.log10(max));
	for (const m of [1, 2, 2.5, 5, 10]) if (max <= m * p) return m * p;
	return 10 * p;
}

/** One bar of a bar chart (components/BarChart.svelte). */
export interface Bar {
	key: string | number;
	label: string;
	value: number;
	/** Said on hover and to screen readers. */
	title: string;
}
