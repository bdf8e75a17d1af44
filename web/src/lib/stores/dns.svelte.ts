/**
 * State of the DNS app that outlives one tab: the switch record (kept current by
 * `dns.switch.changed` events), the blocking switch (`dns.blocking.changed`) and the
 * query log with its filters and pages.
 */
import { api, fieldErrors, type DnsBlocking, type DnsLogQuery, type DnsLogRow, type DnsStatus, type DnsSwitch, type DnsSwitchTarget, type PinasEvent } from '$lib/api';
import { events, type EventStream } from './events.svelte';

export class SwitchStore {
	state = $state<DnsSwitch | null>(null);
	error = $state<string | null>(null);
	busy = $state(false);
	/** Set when the state changed by an event (another admin, or the companion role). */
	changedLive = $state(false);

	async load() {
		try {
			this.state = await api.dns.switchState();
			this.error = null;
		} catch (e) {
			this.error = fieldErrors(e).general ?? 'Could not read the switch.';
		}
	}

	/** Applies a `dns.switch.changed` event: `{name, target, previous, reason, addresses}`. */
	apply(e: PinasEvent) {
		if (e.type !== 'dns.switch.changed') return;
		const d = e.data ?? {};
		if (d.target !== 'nas' && d.target !== 'companion') return;
		const base: DnsSwitch = this.state ?? { name: d.name ?? '', target: d.target, addresses: [], reason: '', ttl_secs: 5, changed_at_ms: 0 };
		this.state = {
			...base,
			name: typeof d.name === 'string' ? d.name : base.name,
			target: d.target,
			reason: typeof d.reason === 'string' ? d.reason : '',
			addresses: Array.isArray(d.addresses) ? d.addresses.map(String) : base.addresses,
			changed_at_ms: typeof e.ts === 'number' && e.ts > 0 ? e.ts : Date.now()
		};
		this.changedLive = true;
	}

	/** Follows the live events; returns the function that stops it. */
	follow(stream: EventStream = events): () => void {
		return stream.on('dns.switch.changed', (e) => this.apply(e));
	}

	/** Points the switch at `target`; returns the message to show next to the reason, or null. */
	async flip(target: DnsSwitchTarget, reason: string): Promise<Record<string, string> | null> {
		this.busy = true;
		try {
			this.state = await api.dns.flip({ target, reason: reason.trim() });
			this.changedLive = false;
			return null;
		} catch (e) {
			const fe = fieldErrors(e);
			return fe.general ? { ...fe.fields, general: fe.general } : fe.fields;
		} finally {
			this.busy = false;
		}
	}
}

/** The blocking switch: on, or off until a time or until turned on again. */
export class BlockingStore {
	state = $state<DnsBlocking | null>(null);
	error = $state<string | null>(null);
	busy = $state(false);

	async load() {
		try {
			this.state = await api.dns.blocking();
			this.error = null;
		} catch (e) {
			this.error = fieldErrors(e).general ?? 'Could not read whether blocking is on.';
		}
	}

	/** Applies a `dns.blocking.changed` event: `{enabled, until, previous, changed_by, reason}`. */
	apply(e: PinasEvent) {
		if (e.type !== 'dns.blocking.changed') return;
		const d = e.data ?? {};
		if (typeof d.enabled !== 'boolean') return;
		this.state = {
			enabled: d.enabled,
			until: typeof d.until === 'number' ? d.until : null,
			changed_by: typeof d.changed_by === 'string' ? d.changed_by : '',
			reason: typeof d.reason === 'string' ? d.reason : '',
			changed_at_ms: typeof e.ts === 'number' && e.ts > 0 ? e.ts : Date.now()
		};
	}

	follow(stream: EventStream = events): () => void {
		return stream.on('dns.blocking.changed', (e) => this.apply(e));
	}

	/** Turns blocking on, or off for `seconds` (null: until turned on). Returns an error message or null. */
	async set(enabled: boolean, seconds: number | null = null): Promise<string | null> {
		this.busy = true;
		try {
			this.state = await api.dns.setBlocking(enabled ? { enabled } : { enabled, duration_s: seconds });
			this.error = null;
			return null;
		} catch (e) {
			const fe = fieldErrors(e);
			return fe.general ?? Object.values(fe.fields)[0] ?? 'Could not change blocking.';
		} finally {
			this.busy = false;
		}
	}
}

export interface LogFilters {
	client: string;
	name: string;
	status: '' | DnsStatus;
	qtype: string;
}

export const emptyFilters = (): LogFilters => ({ client: '', name: '', status: '', qtype: '' });

/** The query log, newest first, one page at a time (`before_id` paging). */
export class QueryLogStore {
	filters = $state<LogFilters>(emptyFilters());
	rows = $state<DnsLogRow[] | null>(null);
	error = $state<string | null>(null);
	loading = $state(false);
	/** `before_id` of each page shown so far; the last one is the current page. */
	private cursors = $state<(number | undefined)[]>([undefined]);
	/** Whether a further (older) page exists. */
	more = $state(false);

	constructor(readonly pageSize = 50) {}

	get page() {
		return this.cursors.length;
	}

	query(before?: number): DnsLogQuery {
		const f = this.filters;
		const q: DnsLogQuery = { limit: this.pageSize + 1 };
		if (f.client.trim()) q.client = f.client.trim();
		if (f.name.trim()) q.name = f.name.trim().toLowerCase();
		if (f.status) q.status = f.status;
		if (f.qtype.trim()) q.qtype = f.qtype.trim().toUpperCase();
		if (before !== undefined) q.before_id = before;
		return q;
	}

	/** Number of the latest request: an older answer that arrives late is dropped. */
	private seq = 0;

	private async fetch(before?: number) {
		const mine = ++this.seq;
		this.loading = true;
		try {
			const got = await api.dns.querylog(this.query(before));
			if (mine !== this.seq) return false;
			this.more = got.length > this.pageSize;
			this.rows = got.slice(0, this.pageSize);
			this.error = null;
			return true;
		} catch (e) {
			if (mine !== this.seq) return false;
			this.error = fieldErrors(e).general ?? Object.values(fieldErrors(e).fields)[0] ?? 'Could not read the query log.';
			return false;
		} finally {
			if (mine === this.seq) this.loading = false;
		}
	}

	/** First page with the current filters. */
	async first() {
		this.cursors = [undefined];
		await this.fetch();
	}

	async next() {
		const last = this.rows?.[this.rows.length - 1];
		if (!this.more || !last) return;
		if (await this.fetch(last.id)) this.cursors = [...this.cursors, last.id];
	}

	async previous() {
		if (this.cursors.length < 2) return;
		const cursors = this.cursors.slice(0, -1);
		if (await this.fetch(cursors[cursors.length - 1])) this.cursors = cursors;
	}

	/** The current page again (new queries may have arrived in front). */
	async refresh() {
		await this.fetch(this.cursors[this.cursors.length - 1]);
	}

	clear() {
		this.filters = emptyFilters();
		return this.first();
	}
}
