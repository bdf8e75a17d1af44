import { describe, expect, it } from 'vitest';
import { bytes, duration, percent, toDate } from './format';
import { loginUrl, safeNext } from './nav';
import { nextTab } from './tabs';
import { hostnameError, setupCodeError, strength, usernameError } from './password';

describe('format', () => {
	it('formats sizes in binary units', () => {
		expect(bytes(0)).toBe('0 B');
		expect(bytes(1536)).toBe('1.5 KB');
		expect(bytes(500 * 1024 ** 3)).toBe('500 GB');
		expect(bytes(null)).toBe('–');
	});
	it('formats durations', () => {
		expect(duration(59)).toBe('0 min');
		expect(duration(93784)).toBe('1 d 2 h 3 min');
	});
	it('clamps percentages', () => {
		expect(percent(5, 0)).toBe(0);
		expect(percent(50, 200)).toBe(25);
		expect(percent(300, 200)).toBe(100);
	});
	it('reads seconds, milliseconds and RFC 3339', () => {
		expect(toDate(1_700_000_000).getTime()).toBe(1_700_000_000_000);
		expect(toDate(1_700_000_000_000).getTime()).toBe(1_700_000_000_000);
		expect(toDate('2026-01-02T03:04:05Z').getUTCHours()).toBe(3);
	});
});

describe('password strength', () => {
	it('rates passwords', () => {
		expect(strength('short').score).toBe(0);
		expect(strength('password123').score).toBe(1);
		expect(strength('aaaaaaaaaa').score).toBe(1);
		expect(strength('lowercaseonly').score).toBeLessThanOrEqual(2);
		expect(strength('Tr0ub4dor&3-horse').score).toBe(4);
	});
	it('validates host and user names', () => {
		expect(hostnameError('pinas')).toBeNull();
		expect(hostnameError('-bad')).toMatch(/hyphens/);
		expect(hostnameError('a'.repeat(64))).toMatch(/63/);
		expect(usernameError('alice')).toBeNull();
		expect(usernameError('Alice')).toMatch(/lowercase/);
		expect(usernameError('')).toMatch(/Enter/);
	});
	it('reads setup codes as people type them', () => {
		expect(setupCodeError('ABCD-EFGH')).toBeNull();
		expect(setupCodeError(' abcd efgh ')).toBeNull();
		expect(setupCodeError('')).toMatch(/Enter/);
		expect(setupCodeError('ABCD-EFG')).toMatch(/8 letters/);
		expect(setupCodeError('ABCD-EFG0')).toMatch(/no 0/);
	});
});

describe('navigation', () => {
	it('only returns to paths on this site', () => {
		expect(safeNext('/?app=shares')).toBe('/?app=shares');
		expect(safeNext('//evil.example')).toBe('/');
		expect(safeNext('https://evil.example')).toBe('/');
		expect(safeNext('/\\evil')).toBe('/');
		expect(safeNext('/login?next=/')).toBe('/');
		expect(safeNext(null)).toBe('/');
	});
	it('builds the login address', () => {
		expect(loginUrl('/')).toBe('/login');
		expect(loginUrl('/?app=users', true)).toBe('/login?next=%2F%3Fapp%3Dusers&expired=1');
	});
});

describe('nextTab', () => {
	it('moves with the arrows, wrapping, and jumps with Home and End', () => {
		expect(nextTab('ArrowRight', 0, 3)).toBe(1);
		expect(nextTab('ArrowRight', 2, 3)).toBe(0);
		expect(nextTab('ArrowLeft', 0, 3)).toBe(2);
		expect(nextTab('Home', 2, 3)).toBe(0);
		expect(nextTab('End', 0, 3)).toBe(2);
		expect(nextTab('Enter', 1, 3)).toBeNull();
	});
});
