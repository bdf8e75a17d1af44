/**
 * Minimal HTTP client for the PiNAS API.
 *
 * - Sends and parses JSON; every error response becomes an {@link ApiError}
 *   carrying the server's `code`, human `message` and optional `field`.
 * - Adds `X-CSRF-Token` to every state-changing request once a session exists.
 * - Calls the registered handlers on `401 unauthorized` (session expired) and
 *   `409 setup_required`, so the shell can send the user to /login or /setup.
 */

export class ApiError extends Error {
	constructor(
		readonly status: number,
		readonly code: string,
		message: string,
		readonly field: string | null = null
	) {
		super(message);
		this.name = 'ApiError';
	}
}

type Handler = (err: ApiError) => void;

let csrfToken: string | null = null;
let onUnauthorized: Handler | null = null;
let onSetupRequired: Handler | null = null;

export function setCsrfToken(token: string | null) {
	csrfToken = token;
}

export function onAuthErrors(handlers: { unauthorized?: Handler; setupRequired?: Handler }) {
	onUnauthorized = handlers.unauthorized ?? null;
	onSetupRequired = handlers.setupRequired ?? null;
}

const STATUS_TEXT: Record<number, string> = {
	400: 'The request was not accepted',
	401: 'You are not logged in',
	403: 'You are not allowed to do this',
	404: 'Not found',
	409: 'This conflicts with the current state',
	422: 'Some input is not valid',
	500: 'The server failed to do this',
	501: 'Not supported here',
	502: 'The server is not reachable',
	503: 'The service is unavailable',
	504: 'The server took too long to answer'
};

/** Turns a non-2xx response into an ApiError, whatever its body holds. */
export async function errorFromResponse(res: Response): Promise<ApiError> {
	let body: unknown = null;
	try {
		body = await res.json();
	} catch {
		// not JSON: a proxy page or an empty body; fall back to the status
	}
	const e = (body as { error?: { code?: unknown; message?: unknown; field?: unknown } } | null)?.error;
	if (e && typeof e.message === 'string') {
		return new ApiError(
			res.status,
			typeof e.code === 'string' ? e.code : 'error',
			e.message,
			typeof e.field === 'string' ? e.field : null
		);
	}
	const text = STATUS_TEXT[res.status] ?? 'The request failed';
	return new ApiError(res.status, `http_${res.status}`, `${text} (HTTP ${res.status}).`);
}

export interface RequestOptions {
	/** Do not call the 401 handler (used by the session probe and login). */
	quiet?: boolean;
	signal?: AbortSignal;
}

export async function request<T>(
	method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
	path: string,
	body?: unknown,
	opts: RequestOptions = {}
): Promise<T> {
	const headers: Record<string, string> = { Accept: 'application/json' };
	if (body !== undefined) headers['Content-Type'] = 'application/json';
	if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
	let res: Response;
	try {
		res = await fetch(path, {
			method,
			headers,
			body: body === undefined ? undefined : JSON.stringify(body),
			credentials: 'same-origin',
			signal: opts.signal
		});
	} catch (e) {
		if ((e as Error)?.name === 'AbortError') throw e;
		throw new ApiError(0, 'network_error', 'The PiNAS cannot be reached. Check the network and try again.');
	}
	if (!res.ok) {
		const err = await errorFromResponse(res);
		if (!opts.quiet) {
			if (res.status === 401) onUnauthorized?.(err);
			else if (res.status === 409 && err.code === 'setup_required') onSetupRequired?.(err);
		}
		throw err;
	}
	if (res.status === 204) return undefined as T;
	const text = await res.text();
	return (text ? JSON.parse(text) : undefined) as T;
}

/** Field name → message, for showing an error next to the input it concerns. */
export function fieldErrors(err: unknown): { fields: Record<string, string>; general: string | null } {
	if (err instanceof ApiError) {
		if (err.field) return { fields: { [err.field]: err.message }, general: null };
		return { fields: {}, general: err.message };
	}
	if (err instanceof Error) return { fields: {}, general: err.message };
	return { fields: {}, general: err == null ? null : String(err) };
}

/** One sentence for an error: the server's message (general or of its field), else `fallback`. */
export function errorText(err: unknown, fallback: string): string {
	const fe = fieldErrors(err);
	return fe.general ?? Object.values(fe.fields)[0] ?? fallback;
}
