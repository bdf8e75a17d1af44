/** Long-running server tasks (format, …) and their progress from `task.progress` events. */
import type { TaskProgress } from '$lib/api';
import { events } from './events.svelte';

export class TaskStore {
	byId = $state<Record<string, TaskProgress>>({});
	private waiters = new Map<string, ((t: TaskProgress) => void)[]>();

	update(t: TaskProgress) {
		if (!t?.task_id) return;
		this.byId[t.task_id] = t;
		if (t.done) {
			for (const w of this.waiters.get(t.task_id) ?? []) w(t);
			this.waiters.delete(t.task_id);
		}
	}

	/** Starts tracking a task the UI has just started, before its first event. */
	track(task_id: string, label: string) {
		if (!this.byId[task_id]) this.byId[task_id] = { task_id, label, percent: 0, done: false, error: null };
	}

	/** Resolves with the final state once the task reports done. */
	finished(task_id: string): Promise<TaskProgress> {
		const t = this.byId[task_id];
		if (t?.done) return Promise.resolve(t);
		return new Promise((resolve) => {
			const list = this.waiters.get(task_id) ?? [];
			list.push(resolve);
			this.waiters.set(task_id, list);
		});
	}

	get active() {
		return Object.values(this.byId).filter((t) => !t.done);
	}
}

export const tasks = new TaskStore();
events.on('task.progress', (e) => tasks.update(e.data));
