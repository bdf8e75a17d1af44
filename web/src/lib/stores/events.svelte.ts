/**
 * The live event stream from `/api/ws`.
 *
 * Keeps the latest system stats (with network rates derived from the byte
 * counters), the recent events, and lets components subscribe by type prefix
 * (`storage.` gets every storage event). Reconnects with a growing delay.
 */
import type { Memory, NetworkCounters, PinasEvent } from '$lib/api';

export interface Stats {
	cpu_percent: number;
	memory: Memory | null;
	/** Bytes per second summed over all interfaces but loopback. */
	rx_rate: number;
	tx_rate: number;
}

type Listener = (e: PinasEvent) => void;

const MAX_RECENT = 200;

/** Sum of rx/tx over interfaces that carry real traffic. */
export function totalCounters(network: NetworkCounters[] | undefined | null) {
	let rx = 0;
	let tx = 0;
	for (const n of network ?? []) {
		if (n.name === 'lo') continue;
		rx += n.rx_bytes;
		tx += n.tx_bytes;
	}
	return { rx, tx };
}

export class EventStream {
	connected = $state(false);
	stats = $state<Stats | null>(null);
	recent = $state<PinasEvent[]>([]);

	private ws: WebSocket | null = null;
	private listeners = new Map<string, Set<Listener>>();
	private retryMs = 1000;
	private retryTimer: ReturnType<typeof setTimeout> | null = null;
	private wanted = false;
	private lastCounters: { rx: number; tx: number; at: number } | null = null;

	connect(url = defaultUrl()) {
		this.wanted = true;
		if (this.ws) return;
		let ws: WebSocket;
		try {
			ws = new WebSocket(url);
		} catch {
			this.scheduleRetry(url);
			return;
		}
		this.ws = ws;
		ws.onopen = () => {
			this.connected = true;
			this.retryMs = 1000;
		};
		ws.onmessage = (m) => {
			try {
				this.dispatch(JSON.parse(String(m.data)));
			} catch {
				// ignore frames that are not JSON events
			}
		};
		ws.onclose = () => {
			this.connected = false;
			this.ws = null;
			if (this.wanted) this.scheduleRetry(url);
		};
	}

	disconnect() {
		this.wanted = false;
		if (this.retryTimer) clearTimeout(this.retryTimer);
		this.retryTimer = null;
		this.ws?.close();
		this.ws = null;
		this.connected = false;
	}

	private scheduleRetry(url: string) {
		if (this.retryTimer) return;
		this.retryTimer = setTimeout(() => {
			this.retryTimer = null;
			if (this.wanted) this.connect(url);
		}, this.retryMs);
		this.retryMs = Math.min(this.retryMs * 2, 15000);
	}

	/** Subscribes to events whose type starts with `prefix` ('' = all). */
	on(prefix: string, fn: Listener): () => void {
		let set = this.listeners.get(prefix);
		if (!set) this.listeners.set(prefix, (set = new Set()));
		set.add(fn);
		return () => set!.delete(fn);
	}

	/** Feeds one event to the store and its subscribers (also used by tests). */
	dispatch(e: PinasEvent, now = Date.now()) {
		if (!e || typeof e.type !== 'string') return;
		if (e.type === 'system.stats.update') {
			this.updateStats(e.data, now);
		} else {
			this.recent = [e, ...this.recent].slice(0, MAX_RECENT);
		}
		for (const [prefix, set] of this.listeners) {
			if (e.type.startsWith(prefix)) for (const fn of set) fn(e);
		}
	}

	private updateStats(d: any, now: number) {
		const c = totalCounters(d?.network);
		let rx_rate = this.stats?.rx_rate ?? 0;
		let tx_rate = this.stats?.tx_rate ?? 0;
		if (this.lastCounters && now > this.lastCounters.at) {
			const dt = (now - this.lastCounters.at) / 1000;
			// counters reset when an interface goes away: never show a negative rate
			rx_rate = Math.max(0, (c.rx - this.lastCounters.rx) / dt);
			tx_rate = Math.max(0, (c.tx - this.lastCounters.tx) / dt);
		}
		this.lastCounters = { ...c, at: now };
		this.stats = {
			cpu_percent: Number(d?.cpu_percent ?? 0),
			memory: d?.memory ?? null,
			rx_rate,
			tx_rate
		};
	}
}

function defaultUrl() {
	const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
	return `${proto}//${location.host}/api/ws`;
}

export const events = new EventStream();
