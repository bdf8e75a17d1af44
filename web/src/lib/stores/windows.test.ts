import { describe, expect, it, vi } from 'vitest';
import { MAX_Z, MIN_H, MIN_W, WindowManager } from './windows.svelte';

function wm() {
	const m = new WindowManager();
	m.setBounds({ width: 1200, height: 800 });
	return m;
}

describe('WindowManager', () => {
	it('opens one window per app and focuses it again', () => {
		const m = wm();
		m.open('storage');
		m.open('shares');
		expect(m.focused?.app).toBe('shares');
		m.open('storage');
		expect(m.windows).toHaveLength(2);
		expect(m.focused?.app).toBe('storage');
	});

	it('minimizes, restores, maximizes and closes', () => {
		const m = wm();
		m.open('a');
		m.open('b');
		m.minimize('b');
		expect(m.focused?.app).toBe('a');
		m.focus('b');
		expect(m.get('b')!.minimized).toBe(false);
		m.toggleMaximize('a');
		expect(m.get('a')!.maximized).toBe(true);
		expect(m.focused?.app).toBe('a');
		m.close('a');
		expect(m.get('a')).toBeNull();
	});

	it('keeps windows reachable and not smaller than the minimum', () => {
		const m = wm();
		m.open('a', { w: 500, h: 400 });
		m.moveTo('a', -5000, -50);
		expect(m.get('a')!.x).toBe(80 - 500);
		expect(m.get('a')!.y).toBe(0);
		m.moveTo('a', 99999, 99999);
		expect(m.get('a')!.x).toBe(1200 - 80);
		m.moveTo('a', 10, 10);
		m.resizeTo('a', 10, 10);
		expect([m.get('a')!.w, m.get('a')!.h]).toEqual([MIN_W, MIN_H]);
		m.resizeTo('a', 5000, 5000);
		expect([m.get('a')!.w, m.get('a')!.h]).toEqual([1190, 790]);
	});

	it('saves and restores the layout, dropping unknown apps and bad values', () => {
		const m = wm();
		m.open('storage');
		m.open('shares');
		m.moveTo('storage', 100, 120);
		m.minimize('shares');
		const saved = JSON.parse(JSON.stringify(m.layout()));
		expect(saved.order).toEqual(['storage', 'shares']);

		const n = wm();
		n.restore({ windows: [...saved.windows, { app: 'gone', x: 1, y: 1, w: 400, h: 300 }, { app: 'users', x: 'x', w: 1 }] }, (a) => a !== 'gone');
		expect(n.windows.map((w) => w.app)).toEqual(['storage', 'shares', 'users']);
		expect(n.get('storage')).toMatchObject({ x: 100, y: 120 });
		expect(n.get('shares')!.minimized).toBe(true);
		expect(n.get('users')).toMatchObject({ x: 40, w: MIN_W });
		expect(n.focused?.app).toBe('users');
		n.restore('garbage', () => true);
		expect(n.windows).toHaveLength(3);
	});

	it('reports changes so the layout can be saved', () => {
		const m = wm();
		const spy = vi.fn();
		m.onChange = spy;
		m.open('a');
		m.moveTo('a', 50, 50);
		expect(spy).toHaveBeenCalledTimes(2);
		expect(spy.mock.lastCall![0].windows[0]).toMatchObject({ app: 'a', x: 50, y: 50 });
	});

	it('cycles through windows', () => {
		const m = wm();
		m.open('a');
		m.open('b');
		m.open('c');
		m.cycle();
		expect(m.focused?.app).toBe('a');
		m.cycle();
		expect(m.focused?.app).toBe('b');
	});

	it('shrinks windows into a smaller screen', () => {
		const m = wm();
		m.open('a', { w: 1000, h: 700 });
		m.setBounds({ width: 390, height: 700 });
		expect(m.get('a')!.w).toBe(390);
		expect(m.get('a')!.x).toBe(0);
	});

	it('keeps z-index under the shell however often windows are focused', () => {
		const m = wm();
		m.open('a');
		m.open('b');
		for (let i = 0; i < 3 * MAX_Z; i++) m.focus(i % 2 ? 'a' : 'b');
		expect(Math.max(...m.windows.map((w) => w.z))).toBeLessThanOrEqual(MAX_Z + 1);
		expect(m.focused?.app).toBe('a');
		m.focus('b');
		expect(m.focused?.app).toBe('b');
	});
});
