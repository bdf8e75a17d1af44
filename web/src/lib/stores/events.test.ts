import { describe, expect, it, vi } from 'vitest';
import { EventStream, totalCounters } from './events.svelte';
import { notifications } from './notifications.svelte';
import { events } from './events.svelte';
import { tasks } from './tasks.svelte';

const stats = (rx: number, tx: number) => ({
	type: 'system.stats.update',
	ts: 0,
	data: {
		cpu_percent: 12.5,
		memory: { total_bytes: 1000, used_bytes: 250, available_bytes: 750 },
		network: [
			{ name: 'lo', rx_bytes: 1e9, tx_bytes: 1e9 },
			{ name: 'eth0', rx_bytes: rx, tx_bytes: tx }
		]
	}
});

describe('EventStream', () => {
	it('derives network rates from counters, ignoring loopback and resets', () => {
		const s = new EventStream();
		s.dispatch(stats(1000, 500), 10_000);
		expect(s.stats).toMatchObject({ cpu_percent: 12.5, rx_rate: 0, tx_rate: 0 });
		s.dispatch(stats(5000, 2500), 12_000);
		expect(s.stats).toMatchObject({ rx_rate: 2000, tx_rate: 1000 });
		s.dispatch(stats(10, 10), 14_000);
		expect(s.stats).toMatchObject({ rx_rate: 0, tx_rate: 0 });
		expect(s.recent).toHaveLength(0);
	});

	it('delivers events to subscribers by type prefix and keeps recent ones', () => {
		const s = new EventStream();
		const storage = vi.fn();
		const all = vi.fn();
		const off = s.on('storage.', storage);
		s.on('', all);
		s.dispatch({ type: 'storage.disk.added', ts: 1, data: { name: 'sdb' } });
		s.dispatch({ type: 'share.created', ts: 2, data: {} });
		expect(storage).toHaveBeenCalledTimes(1);
		expect(all).toHaveBeenCalledTimes(2);
		off();
		s.dispatch({ type: 'storage.disk.removed', ts: 3, data: {} });
		expect(storage).toHaveBeenCalledTimes(1);
		expect(s.recent.map((e) => e.ts)).toEqual([3, 2, 1]);
		for (let i = 0; i < 300; i++) s.dispatch({ type: 'x.y', ts: i, data: null });
		expect(s.recent).toHaveLength(200);
	});

	it('ignores frames that are not events', () => {
		const s = new EventStream();
		s.dispatch(null as never);
		s.dispatch({ ts: 1 } as never);
		expect(s.recent).toHaveLength(0);
	});

	it('sums counters', () => {
		expect(totalCounters(undefined)).toEqual({ rx: 0, tx: 0 });
	});
});

describe('tasks and notifications from events', () => {
	it('tracks task progress and resolves when done', async () => {
		tasks.track('t1', 'Formatting sdb');
		const done = tasks.finished('t1');
		events.dispatch({ type: 'task.progress', ts: 1, data: { task_id: 't1', label: 'Formatting sdb', percent: 40, done: false, error: null } });
		expect(tasks.byId.t1.percent).toBe(40);
		expect(tasks.active.map((t) => t.task_id)).toContain('t1');
		events.dispatch({ type: 'task.progress', ts: 2, data: { task_id: 't1', label: 'Formatting sdb', percent: 100, done: true, error: null } });
		await expect(done).resolves.toMatchObject({ done: true, error: null });
		expect(tasks.active.map((t) => t.task_id)).not.toContain('t1');
		expect(notifications.items[0]).toMatchObject({ level: 'success', title: 'Formatting sdb finished' });
	});

	it('shows a failed task and server notifications', () => {
		events.dispatch({ type: 'task.progress', ts: 1, data: { task_id: 't2', label: 'Formatting sdc', percent: 10, done: true, error: 'device busy' } });
		expect(notifications.items[0]).toMatchObject({ level: 'error', message: 'device busy' });
		events.dispatch({ type: 'notification.new', ts: 1, data: { level: 'warning', title: 'Disk almost full', message: 'data is 95% full' } });
		expect(notifications.items[0]).toMatchObject({ level: 'warning', title: 'Disk almost full' });
		expect(notifications.unread).toBeGreaterThan(0);
		notifications.markAllRead();
		expect(notifications.unread).toBe(0);
	});
});
