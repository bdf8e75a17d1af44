import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** @type {import('@sveltejs/kit').Config} */
const config = {
	preprocess: vitePreprocess(),
	kit: {
		// The UI is a single-page app: `pinas web` serves index.html for every
		// path that is not a file, so client-side routes like /setup work on reload.
		adapter: adapter({ fallback: 'index.html', precompress: false }),
		output: { bundleStrategy: 'single' }
	}
};

export default config;
