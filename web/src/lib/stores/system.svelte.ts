/** System facts the shell needs everywhere (hostname, roles), loaded once per login. */
import { api, type SystemInfo } from '$lib/api';

class SystemStore {
	info = $state<SystemInfo | null>(null);
	error = $state<string | null>(null);

	async refresh() {
		try {
			this.info = await api.system.info();
			this.error = null;
		} catch (e) {
			this.error = (e as Error).message;
		}
		return this.info;
	}
}

export const system = new SystemStore();
