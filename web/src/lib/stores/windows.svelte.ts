/**
 * The window manager: which app windows are open, where, and in what order.
 *
 * One window per app (opening an app that is open focuses it). The layout is
 * plain data (`Layout`) so it can be saved in the user's preferences and
 * restored after the next login.
 */

export interface Win {
	app: string;
	x: number;
	y: number;
	w: number;
	h: number;
	z: number;
	minimized: boolean;
	maximized: boolean;
}

export interface Layout {
	windows: Omit<Win, 'z'>[];
	/** Apps from back to front. */
	order: string[];
}

export interface Bounds {
	width: number;
	height: number;
}

export const MIN_W = 320;
export const MIN_H = 220;
const CASCADE = 28;
/** Highest z-index a window gets (the top bar and dock sit far above). */
export const MAX_Z = 1000;

export class WindowManager {
	windows = $state<Win[]>([]);
	bounds: Bounds = { width: 1280, height: 720 };
	/** Called after every change a user would expect to be remembered. */
	onChange: ((l: Layout) => void) | null = null;
	private topZ = 1;

	get focused(): Win | null {
		let top: Win | null = null;
		for (const w of this.windows) if (!w.minimized && (!top || w.z > top.z)) top = w;
		return top;
	}

	get(app: string) {
		return this.windows.find((w) => w.app === app) ?? null;
	}

	open(app: string, size: { w: number; h: number } = { w: 760, h: 520 }) {
		const existing = this.get(app);
		if (existing) {
			existing.minimized = false;
			this.focus(app);
			return existing;
		}
		const n = this.windows.length;
		const w = Math.min(size.w, this.bounds.width - 16);
		const h = Math.min(size.h, this.bounds.height - 16);
		const win: Win = {
			app,
			x: Math.max(0, Math.min(40 + n * CASCADE, this.bounds.width - w)),
			y: Math.max(0, Math.min(24 + n * CASCADE, this.bounds.height - h)),
			w,
			h,
			z: ++this.topZ,
			minimized: false,
			maximized: false
		};
		this.windows.push(win);
		this.changed();
		return this.get(app)!;
	}

	focus(app: string) {
		const w = this.get(app);
		if (!w) return;
		w.minimized = false;
		if (w.z !== this.topZ) w.z = ++this.topZ;
		// keep z-index small: windows must stay under the top bar and the dock
		if (this.topZ > MAX_Z) this.renumber();
		this.changed();
	}

	private renumber() {
		const sorted = [...this.windows].sort((a, b) => a.z - b.z);
		sorted.forEach((w, i) => (w.z = i + 2));
		this.topZ = sorted.length + 1;
	}

	close(app: string) {
		this.windows = this.windows.filter((w) => w.app !== app);
		this.changed();
	}

	minimize(app: string) {
		const w = this.get(app);
		if (w) w.minimized = true;
		this.changed();
	}

	toggleMaximize(app: string) {
		const w = this.get(app);
		if (!w) return;
		w.maximized = !w.maximized;
		this.focus(app);
	}

	/** Moves a window so that at least its title bar stays reachable. */
	moveTo(app: string, x: number, y: number) {
		const w = this.get(app);
		if (!w) return;
		w.x = Math.round(Math.min(Math.max(x, 80 - w.w), this.bounds.width - 80));
		w.y = Math.round(Math.min(Math.max(y, 0), this.bounds.height - 40));
		this.changed();
	}

	resizeTo(app: string, width: number, height: number) {
		const w = this.get(app);
		if (!w) return;
		w.w = Math.round(Math.min(Math.max(width, MIN_W), Math.max(MIN_W, this.bounds.width - w.x)));
		w.h = Math.round(Math.min(Math.max(height, MIN_H), Math.max(MIN_H, this.bounds.height - w.y)));
		this.changed();
	}

	/** Brings the next window (by stacking order) to the front: Alt+` cycling. */
	cycle() {
		const visible = [...this.windows].sort((a, b) => a.z - b.z);
		if (visible.length < 2) {
			if (visible[0]) this.focus(visible[0].app);
			return;
		}
		this.focus(visible[0].app);
	}

	setBounds(b: Bounds) {
		this.bounds = b;
		for (const w of this.windows) {
			w.w = Math.min(w.w, Math.max(MIN_W, b.width));
			w.h = Math.min(w.h, Math.max(MIN_H, b.height));
			w.x = Math.min(Math.max(w.x, 0), Math.max(0, b.width - w.w));
			w.y = Math.min(Math.max(w.y, 0), Math.max(0, b.height - w.h));
		}
	}

	layout(): Layout {
		const sorted = [...this.windows].sort((a, b) => a.z - b.z);
		return {
			windows: sorted.map(({ z: _z, ...rest }) => ({ ...rest })),
			order: sorted.map((w) => w.app)
		};
	}

	/** Restores a saved layout, dropping apps that no longer exist and bad values. */
	restore(l: unknown, known: (app: string) => boolean) {
		const raw = (l as Layout | null)?.windows;
		if (!Array.isArray(raw)) return;
		const wins: Win[] = [];
		for (const r of raw) {
			if (!r || typeof r.app !== 'string' || !known(r.app) || wins.some((w) => w.app === r.app)) continue;
			const num = (v: unknown, d: number) => (typeof v === 'number' && Number.isFinite(v) ? v : d);
			wins.push({
				app: r.app,
				x: num(r.x, 40),
				y: num(r.y, 24),
				w: Math.max(MIN_W, num(r.w, 760)),
				h: Math.max(MIN_H, num(r.h, 520)),
				z: ++this.topZ,
				minimized: !!r.minimized,
				maximized: !!r.maximized
			});
		}
		this.windows = wins;
		this.setBounds(this.bounds);
	}

	private changed() {
		this.onChange?.(this.layout());
	}
}

export const windows = new WindowManager();
