/** The logged-in user and the CSRF token that goes with the session cookie. */
import { api, setCsrfToken, type Session, type User } from '$lib/api';

class SessionStore {
	user = $state<User | null>(null);
	/** True once we asked the server whether a session exists. */
	checked = $state(false);

	get isAdmin() {
		return this.user?.role === 'admin';
	}

	/** Adopts a session returned by login or setup. */
	adopt(s: Session) {
		setCsrfToken(s.csrf_token);
		this.user = s.user;
		this.checked = true;
	}

	/** Asks the server who we are; returns false when not logged in. */
	async load(): Promise<boolean> {
		try {
			this.adopt(await api.auth.me());
			return true;
		} catch {
			this.clear();
			return false;
		}
	}

	async login(username: string, password: string) {
		this.adopt(await api.auth.login(username, password));
	}

	async logout() {
		try {
			await api.auth.logout();
		} finally {
			this.clear();
		}
	}

	clear() {
		setCsrfToken(null);
		this.user = null;
		this.checked = true;
	}
}

export const session = new SessionStore();
