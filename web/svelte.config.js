import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** @type {import('@sveltejs/kit').Config} */
const config = {
	preprocess: vitePreprocess(),
	kit: {
		// The UI is a single-page app: `pinas web` serves index.html for every
		// path that is not a file, so client-side routes like /setup work on reload.
		adapter: adapter({ fallback: 'index.html', precompress: false }),
		output: { bundleStrategy: 'single' },
		// The image build names the UI by a hash of its sources, so two builds of the
		// same sources are byte-identical; other builds keep SvelteKit's default (the time).
		version: process.env.PINAS_UI_VERSION ? { name: process.env.PINAS_UI_VERSION } : {}
	}
};

export default config;
