/**
 * A simple password strength estimate for the strength meter.
 *
 * Not a security boundary (the server enforces the minimum length); it only
 * nudges people away from short, single-class or repetitive passwords.
 */

export const MIN_PASSWORD = 8;

export interface Strength {
	/** 0 (unusable) … 4 (strong). */
	score: 0 | 1 | 2 | 3 | 4;
	label: string;
}

const COMMON = ['password', '123456', 'qwerty', 'letmein', 'admin', 'raspberry', 'pinas', 'welcome'];

export function strength(pw: string): Strength {
	if (pw.length < MIN_PASSWORD) return { score: 0, label: `Too short (at least ${MIN_PASSWORD} characters)` };
	const lower = pw.toLowerCase();
	if (COMMON.some((c) => lower.includes(c)) || /^(.)\1+$/.test(pw)) return { score: 1, label: 'Weak: easy to guess' };
	let classes = 0;
	if (/[a-z]/.test(pw)) classes++;
	if (/[A-Z]/.test(pw)) classes++;
	if (/[0-9]/.test(pw)) classes++;
	if (/[^A-Za-z0-9]/.test(pw)) classes++;
	const unique = new Set(pw).size;
	let points = classes + (pw.length >= 12 ? 1 : 0) + (pw.length >= 16 ? 1 : 0) - (unique < pw.length / 2 ? 1 : 0);
	if (points <= 1) return { score: 1, label: 'Weak' };
	if (points <= 2) return { score: 2, label: 'Fair' };
	if (points <= 3) return { score: 3, label: 'Good' };
	return { score: 4, label: 'Strong' };
}

/** Hostname as RFC 1123 allows for one label: letters, digits, inner hyphens, ≤ 63. */
export function hostnameError(h: string): string | null {
	if (!h) return 'Enter a name for this PiNAS.';
	if (h.length > 63) return 'Use at most 63 characters.';
	if (!/^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/.test(h))
		return 'Use letters, digits and hyphens only, not at the start or end.';
	return null;
}

/** Unix-style account name as the server accepts it. */
export function usernameError(u: string): string | null {
	if (!u) return 'Enter a user name.';
	if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(u))
		return 'Use lowercase letters, digits, "_" or "-", starting with a letter (at most 32).';
	return null;
}

/** Letters and digits of a setup code, as the server makes them (no 0/O, 1/I/L, U/V). */
const SETUP_CODE = /^[ABCDEFGHJKMNPQRSTWXYZ2-9]{8}$/;

/**
 * The setup code as typed (`abcd-efgh`, `ABCD EFGH`, ...): case, spaces and the dash
 * do not matter. Only the form is checked here; the server checks the code itself.
 */
export function setupCodeError(code: string): string | null {
	const c = code.replace(/[\s-]/g, '').toUpperCase();
	if (!c) return 'Enter the setup code shown by the box.';
	if (!SETUP_CODE.test(c)) return 'A setup code has 8 letters and digits, like ABCD-EFGH (no 0, 1, I, L, O, U or V).';
	return null;
}
