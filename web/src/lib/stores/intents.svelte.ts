/**
 * What an app should do right after it opens, e.g. "add-user" when the user
 * picked "Add user" in the top-bar search. The app takes its intent once.
 */
class Intents {
	pending = $state<Record<string, string>>({});

	set(app: string, action: string) {
		this.pending[app] = action;
	}

	/** Returns and forgets the app's pending action. */
	take(app: string): string | null {
		const a = this.pending[app] ?? null;
		if (a) delete this.pending[app];
		return a;
	}
}

export const intents = new Intents();
