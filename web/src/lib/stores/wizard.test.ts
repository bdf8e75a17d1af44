import { describe, expect, it } from 'vitest';
import { clearWizard, initialState, loadWizard, saveWizard, stepsFor } from './wizard';

class MemStorage {
	m = new Map<string, string>();
	getItem(k: string) {
		return this.m.get(k) ?? null;
	}
	setItem(k: string, v: string) {
		this.m.set(k, v);
	}
	removeItem(k: string) {
		this.m.delete(k);
	}
}

describe('wizard progress', () => {
	it('resumes where it was and never stores a password', () => {
		const st = new MemStorage() as unknown as Storage;
		const s = { ...initialState('Europe/Paris'), step: 'role' as const, hostname: 'box', password: 'secret123' };
		saveWizard(s, st);
		expect(st.getItem('pinas.setup')).not.toContain('secret123');
		const back = loadWizard(st)!;
		expect(back.step).toBe('role');
		expect(back.hostname).toBe('box');
		expect(back.timezone).toBe('Europe/Paris');
		clearWizard(st);
		expect(loadWizard(st)).toBeNull();
	});

	it('rejects damaged saved state', () => {
		const st = new MemStorage() as unknown as Storage;
		st.setItem('pinas.setup', '{not json');
		expect(loadWizard(st)).toBeNull();
		st.setItem('pinas.setup', JSON.stringify({ step: 'nowhere', roles: [] }));
		expect(loadWizard(st)).toBeNull();
	});

	it('has a disk step only for the NAS role', () => {
		expect(stepsFor(['nas'])).toContain('disk');
		expect(stepsFor(['companion'])).not.toContain('disk');
		expect(stepsFor(['nas', 'companion'])).toContain('disk');
	});
});
