import { fireEvent, render, screen } from '@testing-library/svelte';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { session } from '$lib/stores/session.svelte';
import QueryChart from '$lib/components/QueryChart.svelte';
import DnsApp from './DnsApp.svelte';
import { blocklistUrlError, chartGeometry, countdown, fillBuckets, forwardErrors, isIPv4, isIPv6, nameError, niceCeil, patternError, recordErrors, settingsBody, settingsErrors, type SettingsDraft } from './dns';

// jsdom has <dialog> without its modal methods
beforeAll(() => {
	HTMLDialogElement.prototype.showModal ??= function (this: HTMLDialogElement) {
		this.setAttribute('open', '');
	};
	HTMLDialogElement.prototype.close ??= function (this: HTMLDialogElement) {
		this.removeAttribute('open');
	};
});

afterEach(() => {
	vi.unstubAllGlobals();
	session.clear();
});

function json(status: number, body: unknown) {
	return new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

describe('DNS input checks', () => {
	it('accepts names and first-label wildcards only', () => {
		expect(nameError('printer.home')).toBeNull();
		expect(nameError('printer.home.')).toBeNull();
		expect(nameError('*.lab.home', true)).toBeNull();
		expect(nameError('*.lab.home')).toBe('A wildcard is not allowed here.');
		expect(nameError('a.*.home', true)).toMatch(/only allowed as the first label/);
		expect(nameError('bad..name')).toMatch(/empty part/);
		expect(nameError('-x.home')).toMatch(/"-x" may only hold/);
		expect(nameError('under_score.home')).toBeNull();
		expect(nameError(`${'a'.repeat(64)}.home`)).toMatch(/longer than 63/);
		expect(nameError('  ')).toBe('Enter a name.');
	});

	it('tells IPv4 from IPv6 addresses', () => {
		expect(isIPv4('192.168.1.20')).toBe(true);
		for (const bad of ['192.168.1', '256.1.1.1', '01.2.3.4', '1.2.3.4.5', 'a.b.c.d']) expect(isIPv4(bad)).toBe(false);
		for (const good of ['fd00::20', '::1', '::', '2001:db8:0:0:0:0:0:1', '::ffff:192.0.2.1', 'fe80::1:2:3:4']) expect(isIPv6(good), good).toBe(true);
		for (const bad of ['fd00:::1', '1:2:3:4:5:6:7:8:9', '12345::1', '192.168.1.1', 'fd00::g', '1::2::3']) expect(isIPv6(bad), bad).toBe(false);
	});

	it('checks a record by its type, with messages for the fields', () => {
		expect(recordErrors({ name: 'nas.home', type: 'A', value: '192.168.1.20', ttl: '' })).toEqual({});
		expect(recordErrors({ name: 'nas.home', type: 'A', value: 'fd00::1', ttl: '' })).toEqual({ value: 'fd00::1 is not an IPv4 address (like 192.168.1.20).' });
		expect(recordErrors({ name: 'nas.home', type: 'AAAA', value: '10.0.0.1', ttl: '' }).value).toMatch(/not an IPv6 address/);
		expect(recordErrors({ name: 'www.home', type: 'CNAME', value: 'nas.home', ttl: '60' })).toEqual({});
		expect(recordErrors({ name: 'www.home', type: 'CNAME', value: 'bad..target', ttl: '' }).value).toMatch(/^Target: /);
		const e = recordErrors({ name: 'bad name', type: 'A', value: '', ttl: '-1' });
		expect(Object.keys(e).sort()).toEqual(['name', 'ttl_secs', 'value']);
	});

	it('checks forwards, patterns and list addresses', () => {
		expect(forwardErrors('lan', '192.168.1.1')).toEqual({});
		expect(forwardErrors('192.168.1.0/24', 'udp://192.168.1.1:53')).toEqual({});
		expect(forwardErrors('192.168.1.0/20', '192.168.1.1').domain).toMatch(/\/8, \/16 and \/24/);
		expect(forwardErrors('lan', 'router').server).toBe('router is not an IP address.');
		expect(patternError('*.ads.example')).toBeNull();
		expect(patternError('ads.*')).not.toBeNull();
		expect(blocklistUrlError('https://example.org/hosts')).toBeNull();
		expect(blocklistUrlError('/srv/lists/ads.txt')).toBeNull();
		expect(blocklistUrlError('file:///srv/ads.txt')).toBeNull();
		expect(blocklistUrlError('ftp://x/y')).toMatch(/https:\/\//);
		expect(blocklistUrlError('')).toBe('Enter the address of the list.');
	});
});

describe('queries-over-time chart', () => {
	const buckets = [
		{ ts_ms: 0, total: 10, blocked: 2 },
		{ ts_ms: 600_000, total: 40, blocked: 40 },
		{ ts_ms: 1_200_000, total: 0, blocked: 0 }
	];

	it('stacks blocked under answered queries on a round scale', () => {
		expect([niceCeil(0), niceCeil(1), niceCeil(3), niceCeil(40), niceCeil(51), niceCeil(1000)]).toEqual([1, 1, 5, 50, 100, 1000]);
		const g = chartGeometry(buckets, 300, 100, 0);
		expect(g.max).toBe(40);
		expect(g.top).toBe(50);
		expect(g.bars.map((b) => b.x)).toEqual([0, 100, 200]);
		expect(g.bars[0]).toMatchObject({ blockedH: 4, blockedY: 96, allowedH: 16, allowedY: 80 });
		expect(g.bars[1]).toMatchObject({ blockedH: 80, allowedH: 0 });
		expect(g.bars[2]).toMatchObject({ blockedH: 0, allowedH: 0 });
		expect(chartGeometry([], 300, 100).bars).toEqual([]);
	});

	it('fills the period with empty buckets where the server sent none', () => {
		const step = 600_000;
		const filled = fillBuckets([{ ts_ms: 2 * step, total: 3, blocked: 1 }, { ts_ms: 2 * step + 5, total: 2, blocked: 0 }], step + 42, 600, 4 * step + 1);
		expect(filled).toEqual([
			{ ts_ms: step, total: 0, blocked: 0 },
			{ ts_ms: 2 * step, total: 5, blocked: 1 },
			{ ts_ms: 3 * step, total: 0, blocked: 0 },
			{ ts_ms: 4 * step, total: 0, blocked: 0 }
		]);
		// too many slots: the most recent ones are kept, older buckets dropped
		const long = fillBuckets([{ ts_ms: 0, total: 9, blocked: 0 }, { ts_ms: 99 * 1000, total: 1, blocked: 1 }], 0, 1, 99_000, 10);
		expect(long).toHaveLength(10);
		expect(long[0].ts_ms).toBe(90_000);
		expect(long.reduce((n, b) => n + b.total, 0)).toBe(1);
	});

	it('draws one rect per non-empty part and says what it shows', () => {
		const { container } = render(QueryChart, { props: { buckets, bucketSecs: 600 } });
		expect(container.querySelectorAll('rect.allowed')).toHaveLength(1);
		expect(container.querySelectorAll('rect.blocked')).toHaveLength(2);
		expect(screen.getByRole('img').getAttribute('aria-label')).toMatch(/50 queries, 42 blocked/);
	});
});

describe('DNS app', () => {
	it('shows an invalid address next to the field without asking the server, then the server’s duplicate message', async () => {
		session.user = { name: 'admin', role: 'admin' };
		const fetch = vi.fn(async (url: string, init?: RequestInit) => {
			if (url.startsWith('/api/dns/stats')) return json(200, { total: 0, blocked: 0, blocked_percent: 0, bucket_secs: 600, cached: 0, errors: 0, forwarded: 0, local: 0, over_time: [], since_ms: 0, top_blocked: [], top_clients: [], top_domains: [], unique_clients: 0, unique_domains: 0 });
			if (url === '/api/dns/records' && init?.method === 'POST')
				return json(409, { error: { code: 'record_exists', message: 'nas.home already has this A record', field: 'name' } });
			if (url === '/api/dns/records' || url === '/api/dns/forwards') return json(200, []);
			return json(404, {});
		});
		vi.stubGlobal('fetch', fetch);
		render(DnsApp);
		await fireEvent.click(screen.getByRole('tab', { name: 'Local records' }));
		await fireEvent.click(await screen.findByRole('button', { name: 'Add record' }));
		await fireEvent.input(screen.getByLabelText('Name'), { target: { value: 'nas.home' } });
		await fireEvent.input(screen.getByLabelText('Address'), { target: { value: '192.168.1.300' } });
		await fireEvent.submit(document.getElementById('dns-record-form')!);
		const err = await screen.findByText('192.168.1.300 is not an IPv4 address (like 192.168.1.20).');
		expect(err.id).toBe('dns-record-value-error');
		expect(screen.getByLabelText('Address')).toHaveAttribute('aria-invalid', 'true');
		expect(fetch.mock.calls.some(([u, i]) => u === '/api/dns/records' && i?.method === 'POST')).toBe(false);

		await fireEvent.input(screen.getByLabelText('Address'), { target: { value: '192.168.1.30' } });
		await fireEvent.submit(document.getElementById('dns-record-form')!);
		const dup = await screen.findByText('nas.home already has this A record');
		expect(dup.id).toBe('dns-record-name-error');
		const post = fetch.mock.calls.find(([u, i]) => u === '/api/dns/records' && i?.method === 'POST')!;
		expect(JSON.parse(String(post[1]!.body))).toEqual({ name: 'nas.home', type: 'A', value: '192.168.1.30', ttl_secs: null, comment: '' });
	});

	it('queries the log when asked, not on every key typed in a filter', async () => {
		session.user = { name: 'admin', role: 'admin' };
		const urls: string[] = [];
		vi.stubGlobal('fetch', async (url: string) => {
			urls.push(url);
			return url.startsWith('/api/dns/querylog') ? json(200, []) : json(500, {});
		});
		render(DnsApp);
		await fireEvent.click(screen.getByRole('tab', { name: 'Query log' }));
		await screen.findByText('No queries match.');
		await fireEvent.input(screen.getByLabelText('Name contains'), { target: { value: 'pri' } });
		await fireEvent.input(screen.getByLabelText('Name contains'), { target: { value: 'printer' } });
		await new Promise((r) => setTimeout(r, 20));
		expect(urls.filter((u) => u.startsWith('/api/dns/querylog'))).toEqual(['/api/dns/querylog?limit=51']);
		await fireEvent.click(screen.getByRole('button', { name: 'Show' }));
		await vi.waitFor(() => expect(urls[urls.length - 1]).toBe('/api/dns/querylog?limit=51&name=printer'));
	});

	it('turns blocking off for 5 minutes with a countdown, and shows the server’s words for a bad upstream next to the field', async () => {
		session.user = { name: 'admin', role: 'admin' };
		const settings = { upstreams: ['9.9.9.9'], cache_size: 10000, cache_min_ttl_secs: 0, cache_max_ttl_secs: 86400, negative_ttl_secs: 300, blocking_mode: 'null', query_log_retention_days: 7, saved_at_ms: null };
		const sent: { url: string; body: unknown }[] = [];
		vi.stubGlobal('fetch', async (url: string, init?: RequestInit) => {
			if (init?.method === 'POST' || init?.method === 'PUT') sent.push({ url, body: JSON.parse(String(init.body)) });
			if (url === '/api/dns/blocking' && init?.method === 'POST')
				return json(200, { enabled: false, until: Math.floor(Date.now() / 1000) + 300, changed_by: 'admin', reason: '', changed_at_ms: Date.now() });
			if (url === '/api/dns/blocking') return json(200, { enabled: true, until: null, changed_by: '', reason: '', changed_at_ms: 0 });
			if (url === '/api/dns/settings' && init?.method === 'PUT')
				return json(422, { error: { code: 'invalid_settings', message: '"udp://10.0.0.1:0": port 0 is not a valid upstream port', field: 'upstreams' } });
			if (url === '/api/dns/settings') return json(200, settings);
			if (url === '/api/dns/pihole/token') return json(200, { token: 'ab'.repeat(32) });
			return json(500, {});
		});
		render(DnsApp);
		await fireEvent.click(await screen.findByRole('button', { name: '5 minutes' }));
		expect(sent[0]).toEqual({ url: '/api/dns/blocking', body: { enabled: false, duration_s: 300 } });
		expect((await screen.findByText(/^(5:00|4:59)$/)).dataset.countdown).toBeDefined();
		expect(screen.getByRole('button', { name: 'Turn blocking on' })).toBeInTheDocument();

		await fireEvent.click(screen.getByRole('tab', { name: 'Settings' }));
		const ups = await screen.findByLabelText(/^Upstream servers/);
		expect(await screen.findByLabelText('Pi-hole API token')).toHaveValue('ab'.repeat(32));
		await fireEvent.input(ups, { target: { value: 'udp://10.0.0.1:0' } });
		await fireEvent.click(screen.getByRole('button', { name: 'Save settings' }));
		const err = await screen.findByText('"udp://10.0.0.1:0": port 0 is not a valid upstream port');
		expect(err.id).toBe('dns-set-upstreams-error');
		expect(sent[1].body).toMatchObject({ upstreams: ['udp://10.0.0.1:0'], cache_size: 10000, blocking_mode: 'null' });
	});

	it('shows who is answered and the rate limit, sends them, and shows the server’s words for a bad network next to its field', async () => {
		session.user = { name: 'admin', role: 'admin' };
		const settings = { upstreams: ['9.9.9.9'], cache_size: 10000, cache_min_ttl_secs: 0, cache_max_ttl_secs: 86400, negative_ttl_secs: 300, blocking_mode: 'null', query_log_retention_days: 7, allowed_networks: ['local', '203.0.113.0/24'], rate_limit_per_sec: 500, rate_limit_slip: 3, saved_at_ms: null };
		const sent: unknown[] = [];
		vi.stubGlobal('fetch', async (url: string, init?: RequestInit) => {
			if (url === '/api/dns/settings' && init?.method === 'PUT') {
				sent.push(JSON.parse(String(init.body)));
				return json(422, { error: { code: 'invalid_settings', message: '"10.0.0.0/33" is not a network (expected "local", an address, or a network such as 192.168.1.0/24)', field: 'allowed_networks' } });
			}
			if (url === '/api/dns/settings') return json(200, settings);
			if (url === '/api/dns/pihole/token') return json(200, { token: 'ab'.repeat(32) });
			if (url === '/api/dns/blocking') return json(200, { enabled: true, until: null, changed_by: '', reason: '', changed_at_ms: 0 });
			return json(500, {});
		});
		render(DnsApp);
		await fireEvent.click(screen.getByRole('tab', { name: 'Settings' }));
		const nets = await screen.findByLabelText(/^Devices answered/);
		expect(nets).toHaveValue('local\n203.0.113.0/24');
		expect(screen.getByLabelText(/^Answers per second/)).toHaveValue('500');
		expect(screen.getByLabelText(/^Over the limit/)).toHaveValue('3');
		expect(document.getElementById('dns-set-networks-hint')).toHaveTextContent('REFUSED');

		// the form's own check: nothing is sent
		await fireEvent.input(nets, { target: { value: 'my home' } });
		await fireEvent.click(screen.getByRole('button', { name: 'Save settings' }));
		expect((await screen.findByText(/^my home is not a network/)).id).toBe('dns-set-networks-error');
		expect(sent).toEqual([]);

		// the server's check, shown next to the same field
		await fireEvent.input(nets, { target: { value: ' 10.0.0.0/33 \n\nlocal' } });
		await fireEvent.input(screen.getByLabelText(/^Answers per second/), { target: { value: '0' } });
		await fireEvent.click(screen.getByRole('button', { name: 'Save settings' }));
		expect((await screen.findByText(/^"10.0.0.0\/33" is not a network/)).id).toBe('dns-set-networks-error');
		expect(nets).toHaveAttribute('aria-invalid', 'true');
		expect(sent).toEqual([expect.objectContaining({ allowed_networks: ['10.0.0.0/33', 'local'], rate_limit_per_sec: 0, rate_limit_slip: 3 })]);

		// one click back to the home network only
		await fireEvent.click(screen.getByRole('button', { name: 'Answer only the home network' }));
		expect(nets).toHaveValue('local');
		expect(screen.queryByRole('button', { name: 'Answer only the home network' })).toBeNull();
	});

	it('hides changes from users who are not administrators', async () => {
		session.user = { name: 'alice', role: 'user' };
		vi.stubGlobal('fetch', async (url: string) => (url.startsWith('/api/dns/stats') ? json(500, {}) : json(200, [])));
		render(DnsApp);
		expect(await screen.findByRole('alert')).toHaveTextContent('The server failed to do this (HTTP 500).');
		await fireEvent.click(screen.getByRole('tab', { name: 'Local records' }));
		await screen.findByText('No local records yet.');
		expect(screen.queryByRole('button', { name: 'Add record' })).toBeNull();
		expect(screen.queryByRole('form', { name: 'Add a forwarding rule' })).toBeNull();
	});
});

describe('blocking countdown and the settings form', () => {
	it('counts down in minutes, then hours', () => {
		const now = 1_700_000_000_000;
		expect(countdown(1_700_000_300, now)).toBe('5:00');
		expect(countdown(1_700_000_300, now + 1_500)).toBe('4:58');
		expect(countdown(1_700_003_725, now)).toBe('1:02:05');
		expect(countdown(1_699_999_000, now)).toBe('0:00');
	});

	const draft = (over: Partial<SettingsDraft> = {}): SettingsDraft => ({
		upstreams: '9.9.9.9\n\n tcp://1.1.1.1:53 \nhttps://dns.quad9.net/dns-query#9.9.9.9',
		cache_size: '10000',
		cache_min_ttl_secs: '0',
		cache_max_ttl_secs: '86400',
		negative_ttl_secs: '300',
		blocking_mode: 'null',
		query_log_retention_days: '7',
		allowed_networks: 'local\n 192.168.1.0/24 \n\nfd00::/8\n203.0.113.7',
		rate_limit_per_sec: '1000',
		rate_limit_slip: '2',
		...over
	});

	it('checks the fields the server checks and builds the body', () => {
		expect(settingsErrors(draft())).toEqual({});
		expect(settingsBody(draft())).toMatchObject({ upstreams: ['9.9.9.9', 'tcp://1.1.1.1:53', 'https://dns.quad9.net/dns-query#9.9.9.9'], cache_size: 10000 });
		expect(Object.keys(settingsErrors(draft({ upstreams: '  ' })))).toEqual(['upstreams']);
		expect(settingsErrors(draft({ upstreams: 'ftp://x' })).upstreams).toContain('ftp://x');
		expect(Object.keys(settingsErrors(draft({ cache_size: '0' })))).toEqual(['cache_size']);
		expect(Object.keys(settingsErrors(draft({ cache_min_ttl_secs: '600', cache_max_ttl_secs: '60' })))).toEqual(['cache_min_ttl_secs']);
		expect(Object.keys(settingsErrors(draft({ query_log_retention_days: '1.5' })))).toEqual(['query_log_retention_days']);
		expect(settingsBody(draft())).toMatchObject({ allowed_networks: ['local', '192.168.1.0/24', 'fd00::/8', '203.0.113.7'], rate_limit_per_sec: 1000, rate_limit_slip: 2 });
		expect(settingsErrors(draft({ allowed_networks: 'LOCAL' }))).toEqual({});
		expect(settingsErrors(draft({ allowed_networks: ' \n ' })).allowed_networks).toContain('"local" for the home network');
		expect(settingsErrors(draft({ allowed_networks: 'local\nlan' })).allowed_networks).toMatch(/^lan is not a network/);
		expect(settingsErrors(draft({ allowed_networks: Array.from({ length: 65 }, (_, i) => `10.0.${i}.0/24`).join('\n') })).allowed_networks).toBe('At most 64 networks.');
		expect(Object.keys(settingsErrors(draft({ rate_limit_per_sec: '0', rate_limit_slip: '0' })))).toEqual([]);
		expect(Object.keys(settingsErrors(draft({ rate_limit_per_sec: '1000001' })))).toEqual(['rate_limit_per_sec']);
		expect(Object.keys(settingsErrors(draft({ rate_limit_slip: '11' })))).toEqual(['rate_limit_slip']);
		expect(Object.keys(settingsErrors(draft({ rate_limit_slip: '' })))).toEqual(['rate_limit_slip']);
	});
});
