/** Where to go after login: only paths on this site, never another origin. */
export function safeNext(next: string | null | undefined): string {
	if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/';
	if (next.startsWith('/login')) return '/';
	return next;
}

export function loginUrl(current: string, expired = false): string {
	const q = new URLSearchParams();
	if (current && current !== '/') q.set('next', current);
	if (expired) q.set('expired', '1');
	const s = q.toString();
	return s ? `/login?${s}` : '/login';
}
