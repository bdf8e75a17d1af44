/**
 * First-boot wizard progress, kept in localStorage so a reload resumes at the
 * same step. Passwords are never stored: after a reload before the account is
 * created, the admin step asks for the password again.
 */
import type { SystemRole } from '$lib/api';

export const STEPS = ['welcome', 'admin', 'system', 'role', 'disk', 'summary'] as const;
export type Step = (typeof STEPS)[number];

export interface WizardState {
	step: Step;
	username: string;
	hostname: string;
	timezone: string;
	roles: SystemRole[];
	/** POST /api/setup succeeded: the account exists and we are logged in. */
	applied: boolean;
	/** What happened on the disk step. */
	disk: { device: string; action: 'formatted' | 'mounted' } | { action: 'skipped' } | null;
}

const KEY = 'pinas.setup';

export function initialState(suggestedTz: string): WizardState {
	return {
		step: 'welcome',
		username: 'admin',
		hostname: 'pinas',
		timezone: suggestedTz,
		roles: ['nas'],
		applied: false,
		disk: null
	};
}

export function loadWizard(storage: Storage = localStorage): WizardState | null {
	try {
		const raw = storage.getItem(KEY);
		if (!raw) return null;
		const s = JSON.parse(raw) as WizardState;
		if (!STEPS.includes(s.step) || !Array.isArray(s.roles)) return null;
		return s;
	} catch {
		return null;
	}
}

export function saveWizard(s: WizardState, storage: Storage = localStorage) {
	try {
		// only the known fields: nothing secret can slip into storage
		const { step, username, hostname, timezone, roles, applied, disk } = s;
		storage.setItem(KEY, JSON.stringify({ step, username, hostname, timezone, roles, applied, disk }));
	} catch {
		// private mode or full storage: the wizard still works, it just won't resume
	}
}

export function clearWizard(storage: Storage = localStorage) {
	try {
		storage.removeItem(KEY);
	} catch {
		// see saveWizard
	}
}

/** The steps this configuration goes through (no disk step without the NAS role). */
export function stepsFor(roles: SystemRole[]): Step[] {
	return STEPS.filter((s) => s !== 'disk' || roles.includes('nas'));
}

export function browserTimezone(): string {
	try {
		return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
	} catch {
		return 'UTC';
	}
}
