import { describe, expect, it } from 'vitest';
import { APPS, availableApps, search } from './registry';
import { describe as describeEvent, worthListing } from './events';

describe('app registry', () => {
	it('shows apps by role and by user kind', () => {
		const ids = (a: { id: string }[]) => a.map((x) => x.id);
		expect(ids(availableApps(['nas'], true))).toEqual(['storage', 'shares', 'users', 'dns', 'power', 'system', 'events']);
		expect(ids(availableApps(['companion'], true))).toEqual(['shares', 'users', 'dns', 'power', 'companion', 'nas', 'system', 'events']);
		expect(ids(availableApps(['nas'], false))).toEqual(['dns', 'power', 'system', 'events']);
		// the NAS dashboard is for everyone on a companion; the Companion app for admins
		expect(ids(availableApps(['companion'], false))).toEqual(['dns', 'power', 'nas', 'system', 'events']);
		expect(ids(availableApps(null, true))).toHaveLength(APPS.length);
	});

	it('searches titles first, then keywords and settings', () => {
		const hits = search(APPS, 'sha');
		expect(hits[0]).toMatchObject({ label: 'Shares', setting: null });
		expect(search(APPS, 'format')[0]).toMatchObject({ label: 'Format a disk', app: { id: 'storage' } });
		expect(search(APPS, 'samba')[0].app.id).toBe('shares');
		expect(search(APPS, 'REBOOT')[0]).toMatchObject({ label: 'Reboot', action: 'reboot' });
		expect(search(APPS, 'add user')[0]).toMatchObject({ app: { id: 'users' }, action: 'add-user' });
		expect(search(APPS, 'blocklist')[0].app.id).toBe('dns');
		expect(search(APPS, 'dns rec')[0]).toMatchObject({ app: { id: 'dns' }, action: 'add-record' });
		expect(search(APPS, 'kwh')[0].app.id).toBe('power');
		expect(search(APPS, 'add plug')[0]).toMatchObject({ app: { id: 'power' }, action: 'add-plug' });
		expect(search(APPS, 'wake')[0]).toMatchObject({ app: { id: 'companion' } });
		expect(search(APPS, '   ')).toEqual([]);
		expect(search(APPS, 'zzzz')).toEqual([]);
	});

	it('describes events in words', () => {
		expect(describeEvent({ type: 'storage.disk.added', ts: 0, data: { name: 'sdb', size_bytes: 1024 ** 3 } })).toBe('Disk sdb connected (1.0 GB)');
		expect(describeEvent({ type: 'task.progress', ts: 0, data: { label: 'Formatting', percent: 50.4, done: false } })).toBe('Formatting: 50%');
		expect(describeEvent({ type: 'dns.something.new', ts: 0, data: {} })).toBe('dns something new');
		expect(describeEvent({ type: 'dns.switch.changed', ts: 0, data: { name: 'nas.home', target: 'companion', reason: 'NAS asleep' } })).toBe(
			'DNS switch nas.home now points to the companion (NAS asleep)'
		);
		expect(describeEvent({ type: 'dns.blocking.changed', ts: 0, data: { enabled: false, until: null, changed_by: 'admin', reason: 'shop checkout' } })).toBe(
			'DNS blocking turned off by admin (shop checkout)'
		);
		expect(describeEvent({ type: 'dns.blocking.changed', ts: 0, data: { enabled: true, until: null, changed_by: 'timer', reason: 'the timer ended' } })).toBe(
			'DNS blocking turned on by its timer'
		);
		expect(describeEvent({ type: 'dns.settings.changed', ts: 0, data: {} })).toBe('DNS settings changed');
		expect(describeEvent({ type: 'companion.nas.state', ts: 0, data: { state: 'going_offline', reason: 'the NAS shuts down' } })).toBe('NAS going offline (the NAS shuts down)');
		expect(describeEvent({ type: 'power.plug.switched', ts: 0, data: { name: 'Lamp', on: false, by: 'admin' } })).toBe('Plug Lamp switched off by admin');
		// a plug's every reading stays out of the lists
		expect(worthListing({ type: 'power.reading', ts: 0, data: { id: 1, power_w: 8 } })).toBe(false);
		expect(worthListing({ type: 'power.plug.added', ts: 0, data: { name: 'Lamp' } })).toBe(true);
	});
});
