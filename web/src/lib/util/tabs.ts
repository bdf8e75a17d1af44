/**
 * Keyboard moves in a tab list (WAI-ARIA Authoring Practices, "Tabs"): the index of the
 * tab that `key` selects from tab `i` of `n`, wrapping around; `null` for other keys.
 */
export function nextTab(key: string, i: number, n: number): number | null {
	if (key === 'ArrowRight') return (i + 1) % n;
	if (key === 'ArrowLeft') return (i + n - 1) % n;
	if (key === 'Home') return 0;
	if (key === 'End') return n - 1;
	return null;
}
