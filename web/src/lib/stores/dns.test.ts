import { afterEach, describe, expect, it, vi } from 'vitest';
import { EventStream } from './events.svelte';
import { BlockingStore, QueryLogStore, SwitchStore } from './dns.svelte';

afterEach(() => vi.unstubAllGlobals());

function json(status: number, body: unknown) {
	return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

const NAS = { name: 'nas.home', target: 'nas', addresses: ['192.168.1.10'], reason: '', ttl_secs: 5, changed_at_ms: 0 };

describe('SwitchStore', () => {
	it('follows dns.switch.changed events and keeps the TTL', async () => {
		vi.stubGlobal('fetch', async () => json(200, NAS));
		const s = new SwitchStore();
		await s.load();
		expect(s.state).toEqual(NAS);
		const stream = new EventStream();
		const stop = s.follow(stream);
		stream.dispatch({ type: 'dns.switch.changed', ts: 1700000000000, data: { name: 'nas.home', target: 'companion', previous: 'nas', reason: 'NAS asleep', addresses: ['192.168.1.11'] } });
		expect(s.state).toMatchObject({ target: 'companion', addresses: ['192.168.1.11'], reason: 'NAS asleep', ttl_secs: 5, changed_at_ms: 1700000000000 });
		expect(s.changedLive).toBe(true);
		// other events and malformed ones change nothing
		stream.dispatch({ type: 'dns.records.changed', ts: 2, data: {} });
		stream.dispatch({ type: 'dns.switch.changed', ts: 3, data: { target: 'elsewhere' } });
		expect(s.state?.target).toBe('companion');
		stop();
		stream.dispatch({ type: 'dns.switch.changed', ts: 4, data: { target: 'nas' } });
		expect(s.state?.target).toBe('companion');
	});

	it('flips with a reason and returns the server’s words for a bad one', async () => {
		const f = vi.fn(async (_url: string, init?: RequestInit) => {
			const body = JSON.parse(String(init?.body));
			if (body.reason.length > 500) return json(422, { error: { code: 'invalid_reason', message: 'the reason is longer than 500 characters', field: 'reason' } });
			return json(200, { ...NAS, target: body.target, reason: body.reason });
		});
		vi.stubGlobal('fetch', f);
		const s = new SwitchStore();
		expect(await s.flip('companion', '  maintenance ')).toBeNull();
		expect(s.state).toMatchObject({ target: 'companion', reason: 'maintenance' });
		expect(f.mock.calls[0][0]).toBe('/api/dns/switch');
		expect(await s.flip('nas', 'x'.repeat(501))).toEqual({ reason: 'the reason is longer than 500 characters' });
		expect(s.state?.target).toBe('companion');
		expect(s.busy).toBe(false);
	});
});

describe('BlockingStore', () => {
	const ON = { enabled: true, until: null, changed_by: '', reason: '', changed_at_ms: 0 };

	it('turns blocking off for a time and follows dns.blocking.changed events', async () => {
		const sent: unknown[] = [];
		vi.stubGlobal('fetch', async (_url: string, init?: RequestInit) => {
			if (init?.method === 'POST') {
				const b = JSON.parse(String(init.body));
				sent.push(b);
				return json(200, { ...ON, enabled: b.enabled, until: b.duration_s ? 1700000300 : null, changed_by: 'admin' });
			}
			return json(200, ON);
		});
		const s = new BlockingStore();
		await s.load();
		expect(s.state?.enabled).toBe(true);
		expect(await s.set(false, 300)).toBeNull();
		expect(sent[0]).toEqual({ enabled: false, duration_s: 300 });
		expect(s.state).toMatchObject({ enabled: false, until: 1700000300 });
		await s.set(false);
		expect(sent[1]).toEqual({ enabled: false, duration_s: null });
		await s.set(true);
		expect(sent[2]).toEqual({ enabled: true });

		const stream = new EventStream();
		const stop = s.follow(stream);
		stream.dispatch({ type: 'dns.blocking.changed', ts: 5, data: { enabled: false, until: 1700000900, changed_by: 'pihole-api', reason: 'Pi-hole API: disable' } });
		expect(s.state).toMatchObject({ enabled: false, until: 1700000900, changed_by: 'pihole-api', changed_at_ms: 5 });
		stream.dispatch({ type: 'dns.blocking.changed', ts: 6, data: { enabled: 'maybe' } });
		expect(s.state?.enabled).toBe(false);
		stop();
	});

	it('returns the server’s words for a bad duration', async () => {
		vi.stubGlobal('fetch', async () => json(422, { error: { code: 'invalid_duration', message: 'duration_s is 1 to 86400 seconds', field: 'duration_s' } }));
		const s = new BlockingStore();
		expect(await s.set(false, 0)).toContain('86400');
		expect(s.busy).toBe(false);
	});
});

describe('QueryLogStore', () => {
	const rows = (from: number, n: number) =>
		Array.from({ length: n }, (_, i) => ({ id: from - i, ts_ms: 0, client: '10.0.0.2', name: `n${from - i}.example`, qtype: 'A', status: 'forwarded', rcode: 'NOERROR', duration_us: 100, upstream: null }));

	it('sends the filters and pages back and forth with before_id', async () => {
		const urls: string[] = [];
		vi.stubGlobal('fetch', async (url: string) => {
			urls.push(url);
			const before = Number(new URL(url, 'http://x').searchParams.get('before_id') ?? 26);
			// 25 rows in all, ids 25..1
			return json(200, rows(before - 1, Math.min(11, before - 1)));
		});
		const log = new QueryLogStore(10);
		log.filters = { client: ' 10.0.0.2 ', name: 'Ads', status: 'blocked', qtype: 'aaaa' };
		await log.first();
		expect(urls[0]).toBe('/api/dns/querylog?limit=11&client=10.0.0.2&name=ads&status=blocked&qtype=AAAA');
		expect(log.rows?.map((r) => r.id)).toEqual([25, 24, 23, 22, 21, 20, 19, 18, 17, 16]);
		expect([log.page, log.more]).toEqual([1, true]);
		await log.next();
		expect(urls[1]).toMatch(/before_id=16$/);
		expect(log.rows?.[0].id).toBe(15);
		await log.next();
		expect(log.rows?.map((r) => r.id)).toEqual([5, 4, 3, 2, 1]);
		expect([log.page, log.more]).toEqual([3, false]);
		await log.next(); // nothing older
		expect(urls).toHaveLength(3);
		await log.previous();
		expect([log.page, log.rows?.[0].id]).toEqual([2, 15]);
		await log.clear();
		expect(urls[urls.length - 1]).toBe('/api/dns/querylog?limit=11');
		expect(log.page).toBe(1);
	});

	it('drops an answer that arrives after a newer request', async () => {
		const pending: ((r: Response) => void)[] = [];
		vi.stubGlobal('fetch', (url: string) => new Promise<Response>((res) => pending.push((r) => res(r)) && void url));
		const log = new QueryLogStore(10);
		const first = log.first();
		log.filters.name = 'printer';
		const second = log.first();
		pending[1](json(200, rows(5, 1)));
		await second;
		pending[0](json(200, rows(50, 11)));
		await first;
		expect(log.rows?.map((r) => r.id)).toEqual([5]);
		expect([log.more, log.loading]).toEqual([false, false]);
	});

	it('keeps the page when a request fails and says why', async () => {
		vi.stubGlobal('fetch', async () => json(422, { error: { code: 'invalid_query', message: 'client is not an IP address', field: 'client' } }));
		const log = new QueryLogStore(10);
		await log.first();
		expect(log.error).toBe('client is not an IP address');
		expect(log.rows).toBeNull();
	});
});
