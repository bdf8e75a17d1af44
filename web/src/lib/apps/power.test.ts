import { describe, expect, it } from 'vitest';
import type { PowerNas, PowerPlug, PowerUsageRow } from '$lib/api';
import { canSwitch, energy, hours, linePaths, money, nasMayRun, niceTop, startOfWeek, totals, totalWatts, usageLabel, watts, weekRows } from './power';

const day = (y: number, m: number, d: number, wh: number, cost = wh * 0.0003, active = 3600, standby = 600): PowerUsageRow => {
	const start = new Date(y, m - 1, d).getTime();
	return { period: `${y}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`, start_ms: start, end_ms: new Date(y, m - 1, d + 1).getTime(), energy_wh: wh, cost, active_secs: active, standby_secs: standby };
};

const plug = (over: Partial<PowerPlug> & { power_w?: number | null; online?: boolean | null } = {}): PowerPlug =>
	({
		id: 1,
		name: 'NAS',
		address: '127.0.0.1:9999',
		is_nas: false,
		switchable: true,
		created_at_ms: 0,
		account_set: true,
		...over,
		status: { online: over.online ?? true, power_w: over.power_w ?? 10, total_wh: 0, today_wh: 0, last_sample_ms: 0, error: null, failures: 0, next_try_ms: null, klap_version: null, device: null }
	}) as PowerPlug;

const nasView = (state: PowerNas['state'], companion: string | null = null): PowerNas => ({
	plug_id: 1,
	name: 'NAS',
	power_w: 5,
	state,
	threshold_w: 20,
	standby_w: 1,
	companion: companion ? { state: companion, since_ms: 0, read_at_ms: 0 } : null,
	mismatch_since_ms: null
});

describe('power formatting', () => {
	it('formats watts', () => {
		expect(watts(23.46)).toBe('23.5 W');
		expect(watts(0)).toBe('0.0 W');
		expect(watts(150.4)).toBe('150 W');
		expect(watts(1234)).toBe('1.23 kW');
		expect(watts(null)).toBe('–');
		expect(watts(Number.NaN)).toBe('–');
	});
	it('formats energy from Wh', () => {
		expect(energy(850)).toBe('850 Wh');
		expect(energy(12345)).toBe('12.35 kWh');
		expect(energy(123456)).toBe('123.5 kWh');
		expect(energy(2_500_000)).toBe('2,500 kWh');
		expect(energy(undefined)).toBe('–');
	});
	it('formats money in the settings currency, and unknown codes as text', () => {
		expect(money(1.234, 'EUR')).toBe('€1.23');
		expect(money(0, 'USD')).toBe('$0.00');
		expect(money(2.5, 'not a code')).toBe('2.50 not a code');
		expect(money(null, 'EUR')).toBe('–');
	});
	it('formats running times', () => {
		expect(hours(5400)).toBe('1 h 30 min');
		expect(hours(7200)).toBe('2 h');
		expect(hours(59)).toBe('1 min');
		expect(hours(0)).toBe('0 min');
	});
	it('rounds chart scales up', () => {
		expect(niceTop(43)).toBe(50);
		expect(niceTop(7)).toBe(10);
		expect(niceTop(180)).toBe(200);
		expect(niceTop(0)).toBe(1);
	});
});

describe('usage bucketing', () => {
	it('starts weeks on Monday', () => {
		// Thursday 3 December 2026 → Monday 30 November
		expect(new Date(startOfWeek(new Date(2026, 11, 3, 15).getTime())).getDate()).toBe(30);
		// a Sunday belongs to the week before
		expect(new Date(startOfWeek(new Date(2026, 11, 6, 23).getTime())).getDate()).toBe(30);
		expect(new Date(startOfWeek(new Date(2026, 11, 7, 0, 30).getTime())).getDate()).toBe(7);
	});
	it('adds days up per week, oldest first', () => {
		const rows = [day(2026, 12, 7, 500), day(2026, 11, 30, 1000), day(2026, 12, 6, 250), day(2026, 12, 1, 100)];
		const weeks = weekRows(rows);
		expect(weeks.map((w) => w.period)).toEqual(['2026-11-30', '2026-12-07']);
		expect(weeks[0].energy_wh).toBe(1350);
		expect(weeks[0].active_secs).toBe(3 * 3600);
		expect(weeks[0].cost).toBeCloseTo(1350 * 0.0003);
		expect(weeks[1].energy_wh).toBe(500);
		// a Sunday ends its week; a row that is not a day is left out
		expect(weekRows([day(2026, 12, 13, 5)])[0].period).toBe('2026-12-07');
		expect(weekRows([{ ...day(2026, 12, 1, 5), period: '2026-12' }])).toEqual([]);
		expect(weekRows([])).toEqual([]);
	});
	it("labels rows by the server's calendar, not the browser's time zone", () => {
		expect(usageLabel('2026-12', 'month')).toMatch(/Dec.*2026/);
		expect(usageLabel('2026-12-01', 'day')).toMatch(/\b1\b/);
		expect(usageLabel('2026-12-01', 'day')).toMatch(/Dec/);
		expect(usageLabel('2026-11-30', 'week')).toMatch(/^week of .*30/);
		expect(usageLabel('soon', 'day')).toBe('soon');
	});
	it('totals rows', () => {
		expect(totals([day(2026, 12, 1, 100, 0.5, 10, 20), day(2026, 12, 2, 50, 0.25, 1, 2)])).toEqual({ energy_wh: 150, cost: 0.75, active_secs: 11, standby_secs: 22 });
	});
});

describe('plugs', () => {
	it('adds up the power of the plugs that answer', () => {
		expect(totalWatts([plug({ power_w: 10 }), plug({ power_w: 2.5 }), plug({ online: false, power_w: 99 })])).toBe(12.5);
		expect(totalWatts([plug({ online: false })])).toBeNull();
	});
	it('never offers switching the NAS off while it may run', () => {
		const nasPlug = plug({ is_nas: true });
		expect(nasMayRun(nasView('off'))).toBe(false);
		expect(nasMayRun(nasView('active'))).toBe(true);
		expect(nasMayRun(nasView('unknown'))).toBe(true);
		expect(nasMayRun(nasView('standby', 'online'))).toBe(true);
		expect(nasMayRun(nasView('standby', 'offline'))).toBe(false);
		expect(canSwitch(nasPlug, false, true, nasView('standby', 'online'))).toBe(false);
		expect(canSwitch(nasPlug, false, true, nasView('off', 'offline'))).toBe(true);
		expect(canSwitch(nasPlug, true, true, nasView('active'))).toBe(true);
		expect(canSwitch(plug(), false, true, nasView('active'))).toBe(true);
		expect(canSwitch(plug(), false, false, null)).toBe(false);
		expect(canSwitch(plug({ switchable: false }), true, true, null)).toBe(false);
	});
});

describe('power chart', () => {
	it('breaks the line at gaps', () => {
		const pts = [0, 10, 20, 50, 60].map((t) => ({ at_ms: t, power_w: t, min_w: t, max_w: t, samples: 1, total_wh: 0 }));
		const paths = linePaths(pts, [{ start_ms: 25, end_ms: 45, reason: 'plug_unreachable' }], 0, 100, 100, 50, 100);
		expect(paths).toHaveLength(2);
		expect(paths[0]).toBe('M0.0,50.0L10.0,45.0L20.0,40.0');
		expect(paths[1]).toBe('M50.0,25.0L60.0,20.0');
		expect(linePaths(pts, [], 0, 100, 100, 50, 100)).toHaveLength(1);
		expect(linePaths([], [], 0, 100, 100, 50, 100)).toEqual([]);
	});
});
