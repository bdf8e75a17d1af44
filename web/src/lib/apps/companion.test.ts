import { describe, expect, it } from 'vitest';
import { ago, draftErrors, periodLabel, remoteBody, remoteDraft, settingsBody, settingsDraft, stateTone, stateWord, usageBars } from './companion';

describe('companion helpers', () => {
	it('says how long ago', () => {
		const now = 1_000_000_000_000;
		expect(ago(now - 1000, now)).toBe('just now');
		expect(ago(now - 45_000, now)).toBe('45 s ago');
		expect(ago(now - 12 * 60_000, now)).toBe('12 min ago');
		expect(ago(now - 3 * 3600_000 - 5, now)).toBe('3 h ago');
		expect(ago(now - 2 * 86400_000, now)).toBe('2 d ago');
		expect(ago(null, now)).toBe('never');
		// a clock slightly ahead of the browser's is not "in the future"
		expect(ago(now + 3000, now)).toBe('just now');
	});
	it('names states and their tone', () => {
		expect(stateWord('coming_online')).toBe('Coming online');
		expect(stateWord(null)).toBe('Not known yet');
		expect(stateTone('online')).toBe('ok');
		expect(stateTone('waking')).toBe('warn');
		expect(stateTone('unreachable')).toBe('danger');
		expect(stateTone('offline')).toBe('');
	});
	it('turns usage buckets into shares of each period, the current one up to now', () => {
		const d0 = Date.UTC(2026, 11, 1);
		const day = 86400_000;
		const now = d0 + day + day / 4; // six hours into the second day
		const bars = usageBars(
			[
				{ start_ms: d0, end_ms: d0 + day, up_secs: 6 * 3600, starts: 2, longest_up_secs: 4 * 3600 },
				{ start_ms: d0 + day, end_ms: d0 + 2 * day, up_secs: 3 * 3600, starts: 1, longest_up_secs: 3 * 3600 }
			],
			'day',
			now
		);
		expect(bars.map((b) => b.fraction)).toEqual([0.25, 0.5]);
		expect(bars[0].label).toBe('1 Dec');
		expect(bars[1].starts).toBe(1);
		expect(periodLabel('week', Date.UTC(2026, 10, 30))).toBe('week of 30 Nov');
		expect(periodLabel('month', Date.UTC(2026, 11, 1))).toBe('Dec 2026');
	});
	it('keeps the settings form as text and sends numbers', () => {
		const s = { nas_name: 'bignas', nas_mac: 'aa:bb:cc:dd:ee:ff', nas_ip: '', health_url: '', heartbeat_interval_secs: 30, misses_before_takeover: 3, wake_timeout_secs: 90, inbox_target: '' };
		const d = settingsDraft(s);
		expect(d.heartbeat_interval_secs).toBe('30');
		expect(draftErrors(d)).toEqual({});
		expect(settingsBody({ ...d, nas_mac: ' AA-BB-CC-DD-EE-FF ' })).toEqual({ ...s, nas_mac: 'AA-BB-CC-DD-EE-FF' });
		expect(draftErrors({ ...d, misses_before_takeover: 'three', wake_timeout_secs: '' })).toEqual({
			misses_before_takeover: 'Enter a whole number.',
			wake_timeout_secs: 'Enter a whole number.'
		});
		// the SecureOn password is left out, so the server keeps it
		expect('secureon_password' in settingsBody(d)).toBe(false);
	});

	it('never fills the remote password in, and sends it only when typed', () => {
		const view = { enabled: true, kind: 'smb' as const, server: 'bignas', port: null, share: 'video', username: 'pi', version: null, password_set: true };
		const d = remoteDraft(view);
		expect(d.password).toBe('');
		expect(d.version).toBe('');
		// nothing typed: left out, so the server keeps the stored one
		expect('password' in remoteBody(d)).toBe(false);
		expect(remoteBody({ ...d, password: 's3cret' }).password).toBe('s3cret');
		expect(remoteBody({ ...d, clear_password: true }).password).toBe('');
		expect(remoteBody({ ...d, version: ' 3.1.1 ' }).version).toBe('3.1.1');
		expect(remoteBody(d).version).toBeNull();
		// NFS takes no account
		const nfs = remoteBody({ ...d, kind: 'nfs', share: ' /srv/video ', password: 'x' });
		expect(nfs).toEqual({ enabled: true, kind: 'nfs', server: 'bignas', port: null, share: '/srv/video', username: '', version: null, password: '' });
		expect(remoteBody({ ...d, port: ' 4450 ' }).port).toBe(4450);
		expect(remoteBody({ ...d, port: 'x' }).port).toBe(0);
		expect(remoteDraft({ ...view, port: 4450 }).port).toBe('4450');
	});
});
