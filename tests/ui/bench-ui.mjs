// Figures for the UI's first load: JavaScript + CSS sent to the browser (raw and
// gzip) and the time from navigation to an interactive desktop, measured in the
// system Chromium against pinas dev on localhost. Prints figures; asserts nothing.
import { gzipSync } from 'node:zlib';
import { launchBrowser, startPinas } from './lib/harness.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const AIM_KB = 250;
const AIM_MS = 1000;

const server = await startPinas('bench-ui');
const browser = await launchBrowser();
try {
	const r = await fetch(`${server.url}/api/setup`, {
		method: 'POST',
		headers: { 'Content-Type': 'application/json' },
		body: JSON.stringify({
			admin: { username: 'admin', password: 'Bench-password-1' },
			hostname: 'bench',
			timezone: 'UTC',
			roles: ['nas'],
			setup_code: server.setupCode()
		})
	});
	if (!r.ok) throw new Error(`setup failed: HTTP ${r.status}`);
	const cookie = r.headers.get('set-cookie').split(';')[0];
	const [name, value] = cookie.split('=');
	const cookies = [{ name, value, url: server.url }];

	// 1. what the first load transfers
	const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
	await ctx.addCookies(cookies);
	const page = await ctx.newPage();
	const assets = [];
	page.on('response', async (res) => {
		const type = res.request().resourceType();
		if (type !== 'script' && type !== 'stylesheet') return;
		try {
			const body = await res.body();
			assets.push({ url: new URL(res.url()).pathname, type, raw: body.length, gzip: gzipSync(body, { level: 6 }).length });
		} catch {
			// a response without a body (redirect): nothing to count
		}
	});
	await page.goto(server.url + '/');
	await page.getByRole('navigation', { name: 'Apps' }).waitFor();
	await page.waitForLoadState('networkidle');
	await ctx.close();
	const sum = (k, t) => assets.filter((a) => !t || a.type === t).reduce((n, a) => n + a[k], 0);
	const kb = (n) => (n / 1024).toFixed(1);
	console.log('first load (desktop, logged in):');
	for (const a of assets) console.log(`  ${a.type.padEnd(10)} ${kb(a.raw).padStart(7)} KB raw ${kb(a.gzip).padStart(7)} KB gzip  ${a.url}`);
	console.log(`  JS   ${kb(sum('raw', 'script'))} KB raw, ${kb(sum('gzip', 'script'))} KB gzip`);
	console.log(`  CSS  ${kb(sum('raw', 'stylesheet'))} KB raw, ${kb(sum('gzip', 'stylesheet'))} KB gzip`);
	const total = sum('gzip');
	console.log(`  total JS + CSS: ${kb(total)} KB gzip (aim <= ${AIM_KB} KB: ${total / 1024 <= AIM_KB ? 'met' : 'NOT met'})`);

	// 2. navigation to an interactive desktop, cold cache each run
	const times = [];
	for (let i = 0; i < RUNS; i++) {
		const c = await browser.newContext({ viewport: { width: 1280, height: 800 } });
		await c.addCookies(cookies);
		const p = await c.newPage();
		const t0 = Date.now();
		await p.goto(server.url + '/', { waitUntil: 'commit' });
		// interactive: the dock answers a click by opening a window
		await p.getByRole('navigation', { name: 'Apps' }).getByRole('button', { name: /^System/ }).click();
		await p.locator('section.window[data-app="system"]').waitFor();
		const ms = Date.now() - t0;
		const nav = await p.evaluate(() => {
			const n = performance.getEntriesByType('navigation')[0];
			return { dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd };
		});
		times.push({ ms, ...nav });
		await c.close();
	}
	const sorted = times.map((t) => t.ms).sort((a, b) => a - b);
	const pct = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
	const median = pct(0.5);
	const avg = (k) => (times.reduce((n, t) => n + t[k], 0) / times.length).toFixed(0);
	console.log(`navigation to interactive desktop (${RUNS} cold runs, localhost):`);
	console.log(`  median ${median} ms, p90 ${pct(0.9)} ms, min ${sorted[0]} ms, max ${sorted.at(-1)} ms`);
	console.log(`  DOMContentLoaded avg ${avg('dcl')} ms, load avg ${avg('load')} ms`);
	console.log(`  aim <= ${AIM_MS} ms: ${median <= AIM_MS ? 'met' : 'NOT met'} (median)`);
} finally {
	await browser.close();
	await server.stop();
}
