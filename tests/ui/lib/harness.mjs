// Starts `pinas dev` on a free port with a fresh state folder, and the system
// Chromium through playwright-core. Shared by every browser test.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, createWriteStream, existsSync, readFileSync, rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const ARTIFACTS = join(ROOT, 'tests/ui/artifacts');
export const SHOTS = join(ROOT, 'docs/images');
export const PINAS = process.env.PINAS_BIN ?? join(ROOT, 'target/debug/pinas');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
	'--no-sandbox',
	'--disable-gpu',
	'--disable-quic',
	'--no-first-run',
	'--disable-background-networking',
	'--disable-component-update',
	'--disable-sync',
	'--disable-dev-shm-usage'
];

/** Addresses the switch record answers in the test configuration. */
export const SWITCH = { nas: '192.168.77.10', companion: '192.168.77.11' };

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Marks test `t` skipped for `reason` (what is missing here and how to get it): the TAP
 * output says `# SKIP`, tests/ui/run counts it as skipped, and the line
 * `ui::<test>: <reason>` is appended to $PINAS_TEST_SKIPS when set. Under CI=true (root,
 * every tool installed) a skip is a failure: this throws instead. The test function
 * goes on unless the caller returns; a test that skips a part still runs the rest.
 */
export function skip(t, reason) {
	if (process.env.CI === 'true') assert.fail(`skipped under CI=true, where a skip is a failure: ${reason}`);
	t.skip(reason);
	if (process.env.PINAS_TEST_SKIPS) appendFileSync(process.env.PINAS_TEST_SKIPS, `ui::${t.name}: ${reason.replace(/\n/g, ' ')}\n`);
}

/** Whether `prog` is installed (PATH, then /usr/sbin and /sbin). */
export function haveTool(prog) {
	return spawnSync('sh', ['-c', 'command -v "$1" || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]', 'sh', prog]).status === 0;
}

export function freePort() {
	return new Promise((resolvePort, reject) => {
		const srv = createServer();
		srv.unref();
		srv.on('error', reject);
		srv.listen(0, '127.0.0.1', () => {
			const { port } = srv.address();
			srv.close(() => resolvePort(port));
		});
	});
}

async function waitFor(fn, timeoutMs, what) {
	const end = Date.now() + timeoutMs;
	let last;
	while (Date.now() < end) {
		try {
			if (await fn()) return;
		} catch (e) {
			last = e;
		}
		await new Promise((r) => setTimeout(r, 100));
	}
	throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

/**
 * Runs `pinas dev --state <fresh dir>` serving web/build.
 * Returns { url, state, log, stop(), api(path) }. `demoPlug` adds the fake Tapo P110
 * (`--demo-plug`); `config` is appended to config.toml.
 */
export async function startPinas(name = 'pinas', { demoPlug = false, config = '' } = {}) {
	if (!existsSync(PINAS)) throw new Error(`${PINAS} is missing: run cargo build -p pinas`);
	if (!existsSync(join(ROOT, 'web/build/index.html'))) throw new Error('web/build is missing: run npm run build in web/');
	await mkdir(ARTIFACTS, { recursive: true });
	const state = await mkdtemp(join(tmpdir(), 'pinas-ui-'));
	// mkdtemp makes it private; Samba serves shares under it as the share's users
	await chmod(state, 0o755);
	const port = await freePort();
	const smbPort = await freePort();
	const dnsPort = await freePort();
	// own ports for Samba and DNS, so the suite can run beside another pinas dev
	// the switch record gets an address per target so that a flip changes the answer
	await writeFile(
		join(state, 'config.toml'),
		`[smb]\nport = ${smbPort}\n\n[dns]\nlisten = "127.0.0.1:${dnsPort}"\n\n[dns.switch]\nnas_addresses = ["${SWITCH.nas}"]\ncompanion_addresses = ["${SWITCH.companion}"]\n${config}`
	);
	const url = `http://127.0.0.1:${port}`;
	const log = join(ARTIFACTS, `${name}.log`);
	const out = createWriteStream(log);
	const proc = spawn(PINAS, ['dev', '--state', state, ...(demoPlug ? ['--demo-plug'] : [])], {
		cwd: ROOT,
		env: {
			...process.env,
			PINAS_BIND_ADDRESS: `127.0.0.1:${port}`,
			PINAS_WEB_DIR: join(ROOT, 'web/build'),
			PINAS_LOG_LEVEL: process.env.PINAS_LOG_LEVEL ?? 'info'
		},
		stdio: ['ignore', 'pipe', 'pipe']
	});
	proc.stdout.pipe(out);
	proc.stderr.pipe(out);
	let exited = null;
	proc.on('exit', (code) => (exited = code));
	await waitFor(
		async () => {
			if (exited !== null) throw new Error(`pinas dev exited with ${exited}; see ${log}`);
			const r = await fetch(`${url}/api/system/health`);
			return r.ok;
		},
		30000,
		'pinas dev to answer'
	);
	const openapi = await (await fetch(`${url}/api/openapi.json`)).json();
	return {
		url,
		state,
		smbPort,
		dnsPort,
		log,
		proc,
		openapi,
		/**
		 * Fails the test unless the server's OpenAPI document has `method` `path`: a
		 * route that goes missing is a failure, never a skip.
		 */
		requireRoute(path, method = 'get') {
			assert.ok(openapi.paths?.[path]?.[method], `the server's OpenAPI document has no ${method.toUpperCase()} ${path}`);
		},
		logText() {
			return readFileSync(log, 'utf8');
		},
		/** The setup code while setup is pending (`ABCD-EFGH`), as the box shows it. */
		setupCode() {
			return readFileSync(join(state, 'setup-code'), 'utf8').trim();
		},
		async stop() {
			if (exited === null) {
				proc.kill('SIGTERM');
				await waitFor(async () => exited !== null, 10000, 'pinas dev to stop').catch(() => proc.kill('SIGKILL'));
			}
			await rm(state, { recursive: true, force: true }).catch(() => {});
		}
	};
}

/** Headless system Chromium; Playwright gives it a fresh temporary profile. */
export async function launchBrowser() {
	if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
	return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

export { waitFor };

/**
 * Starts dnsmasq (Debian dnsmasq-base) on 127.0.0.1 and a free port, answering only
 * from `args` (e.g. `--address=/#/10.7.7.7`), as an upstream that never leaves the
 * machine. Returns { port, stop() }, or null when dnsmasq is not installed.
 */
export async function startDnsmasq(args) {
	const bin = ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'].find((p) => existsSync(p));
	if (!bin) return null;
	const port = await freePort();
	const child = spawn(
		bin,
		[
			'--keep-in-foreground',
			'--conf-file=/dev/null',
			'--no-resolv',
			'--no-hosts',
			'--pid-file=',
			'--bind-interfaces',
			'--listen-address=127.0.0.1',
			`--port=${port}`,
			...(isRoot ? ['--user=root'] : []),
			...args
		],
		{ stdio: 'ignore' }
	);
	await waitFor(
		() =>
			new Promise((res) => {
				const s = connect(port, '127.0.0.1', () => {
					s.destroy();
					res(true);
				});
				s.on('error', () => res(false));
			}),
		5000,
		`dnsmasq on port ${port}`
	);
	return {
		port,
		stop() {
			child.kill();
		}
	};
}

/**
 * Attaches a blank file as a loop disk (root only) and has udev announce it as a
 * plugged-in disk. Returns { dev, name, detach() }; detach unmounts whatever is
 * mounted from it, detaches it and announces the removal.
 */
export async function attachLoopDisk(sizeMb = 96) {
	if (!isRoot) throw new Error('loop disks need root');
	if (spawnSync('udevadm', ['control', '--ping', '--timeout=2']).status !== 0) {
		// hotplug events come from udev; containers often run without it, or keep the
		// control socket of a daemon that died
		spawnSync('/lib/systemd/systemd-udevd', ['--daemon']);
		await new Promise((r) => setTimeout(r, 500));
	}
	const img = join(tmpdir(), `pinas-ui-disk-${process.pid}-${Date.now()}.img`);
	execFileSync('truncate', ['-s', `${sizeMb}M`, img]);
	const dev = execFileSync('losetup', ['--find', '--show', img], { encoding: 'utf8' }).trim();
	// attaching a file to an existing loop device is only a "change" to the
	// kernel; a USB disk would be an "add": have udev announce it as one
	spawnSync('udevadm', ['trigger', '--action=add', dev]);
	spawnSync('udevadm', ['settle', '--timeout=10']);
	let attached = true;
	return {
		dev,
		name: dev.replace('/dev/', ''),
		detach() {
			if (!attached) return;
			attached = false;
			const mounts = readFileSync('/proc/self/mounts', 'utf8')
				.split('\n')
				.filter((l) => l.startsWith(`${dev} `))
				.map((l) => l.split(' ')[1]);
			for (const m of mounts) spawnSync('umount', [m]);
			spawnSync('losetup', ['-d', dev]);
			// and unplugging it is a "remove"
			spawnSync('udevadm', ['trigger', '--action=remove', dev]);
			spawnSync('udevadm', ['settle', '--timeout=10']);
			rmSync(img, { force: true });
		}
	};
}
