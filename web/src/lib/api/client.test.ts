import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError, errorFromResponse, errorText, fieldErrors, onAuthErrors, request, setCsrfToken } from './client';

function json(status: number, body: unknown) {
	return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

afterEach(() => {
	vi.unstubAllGlobals();
	setCsrfToken(null);
	onAuthErrors({});
});

describe('errorFromResponse', () => {
	it('keeps the server code, message and field', async () => {
		const e = await errorFromResponse(
			json(422, { error: { code: 'password_too_short', message: 'Use at least 8 characters.', field: 'password' } })
		);
		expect(e).toBeInstanceOf(ApiError);
		expect([e.status, e.code, e.message, e.field]).toEqual([422, 'password_too_short', 'Use at least 8 characters.', 'password']);
	});

	it('never shows raw bodies: HTML or empty bodies become words', async () => {
		const e = await errorFromResponse(new Response('<html>Bad gateway</html>', { status: 502 }));
		expect(e.message).toBe('The server is not reachable (HTTP 502).');
		expect(e.message).not.toContain('<');
		const e2 = await errorFromResponse(json(500, { unexpected: true }));
		expect(e2.message).toBe('The server failed to do this (HTTP 500).');
	});
});

describe('request', () => {
	it('sends the CSRF token on changes but not on reads', async () => {
		const f = vi.fn(async () => json(200, { ok: true }));
		vi.stubGlobal('fetch', f);
		setCsrfToken('tok123');
		await request('GET', '/api/x');
		await request('POST', '/api/y', { a: 1 });
		const calls = f.mock.calls as unknown as [string, RequestInit][];
		expect((calls[0][1].headers as Record<string, string>)['X-CSRF-Token']).toBeUndefined();
		expect((calls[1][1].headers as Record<string, string>)['X-CSRF-Token']).toBe('tok123');
		expect(calls[1][1].body).toBe('{"a":1}');
	});

	it('reports an expired session and a missing setup to the shell', async () => {
		const unauthorized = vi.fn();
		const setupRequired = vi.fn();
		onAuthErrors({ unauthorized, setupRequired });
		vi.stubGlobal('fetch', async () => json(401, { error: { code: 'unauthorized', message: 'Log in first.' } }));
		await expect(request('GET', '/api/shares')).rejects.toThrow('Log in first.');
		expect(unauthorized).toHaveBeenCalledTimes(1);
		await expect(request('GET', '/api/auth/me', undefined, { quiet: true })).rejects.toBeInstanceOf(ApiError);
		expect(unauthorized).toHaveBeenCalledTimes(1);
		vi.stubGlobal('fetch', async () => json(409, { error: { code: 'setup_required', message: 'Set up first.' } }));
		await expect(request('GET', '/api/shares')).rejects.toThrow();
		expect(setupRequired).toHaveBeenCalledTimes(1);
	});

	it('turns a network failure into a readable error', async () => {
		vi.stubGlobal('fetch', async () => {
			throw new TypeError('Failed to fetch');
		});
		await expect(request('GET', '/api/x')).rejects.toMatchObject({ code: 'network_error' });
	});

	it('accepts empty success bodies', async () => {
		vi.stubGlobal('fetch', async () => new Response(null, { status: 204 }));
		await expect(request('DELETE', '/api/shares/1')).resolves.toBeUndefined();
	});
});

describe('fieldErrors', () => {
	it('puts a field error next to its field and other errors on the form', () => {
		expect(fieldErrors(new ApiError(409, 'share_name_taken', 'Taken.', 'name'))).toEqual({ fields: { name: 'Taken.' }, general: null });
		expect(fieldErrors(new ApiError(500, 'x', 'Broke.'))).toEqual({ fields: {}, general: 'Broke.' });
	});
});

describe('errorText', () => {
	it('says the general message, else the field message, else the fallback', () => {
		expect(errorText(new ApiError(503, 'down', 'Down.'), 'x')).toBe('Down.');
		expect(errorText(new ApiError(422, 'invalid_mac', 'Not a MAC.', 'nas_mac'), 'x')).toBe('Not a MAC.');
		expect(errorText(null, 'Could not read.')).toBe('Could not read.');
	});
});
