/** Notifications: from `notification.new` events and from the UI itself; the newest are also toasts. */
import type { Notification } from '$lib/api';
import { events } from './events.svelte';

export interface Note extends Notification {
	id: number;
	at: number;
	read: boolean;
}

const TOAST_MS = 6000;

export class NotificationStore {
	items = $state<Note[]>([]);
	toasts = $state<Note[]>([]);
	private nextId = 1;

	get unread() {
		return this.items.filter((n) => !n.read).length;
	}

	push(n: Notification, toast = true) {
		const note: Note = { ...n, id: this.nextId++, at: Date.now(), read: false };
		this.items = [note, ...this.items].slice(0, 100);
		if (toast) {
			this.toasts = [...this.toasts, note];
			setTimeout(() => this.dismiss(note.id), TOAST_MS);
		}
		return note;
	}

	dismiss(id: number) {
		this.toasts = this.toasts.filter((t) => t.id !== id);
	}

	markAllRead() {
		this.items = this.items.map((n) => ({ ...n, read: true }));
	}

	clear() {
		this.items = [];
	}
}

export const notifications = new NotificationStore();
events.on('notification.new', (e) => {
	const d = e.data ?? {};
	notifications.push({
		level: d.level ?? 'info',
		title: String(d.title ?? 'Notification'),
		message: String(d.message ?? '')
	});
});
events.on('task.progress', (e) => {
	const t = e.data;
	if (t?.done) {
		notifications.push(
			t.error
				? { level: 'error', title: `${t.label} failed`, message: t.error }
				: { level: 'success', title: `${t.label} finished`, message: '' }
		);
	}
});
