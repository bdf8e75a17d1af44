import { sveltekit } from '@sveltejs/kit/vite';
import { svelteTesting } from '@testing-library/svelte/vite';
import { defineConfig } from 'vitest/config';

// In `npm run dev`, API calls go to a running `pinas dev` (default :3000).
const api = process.env.PINAS_API ?? 'http://127.0.0.1:3000';

export default defineConfig({
	plugins: [sveltekit(), svelteTesting()],
	server: {
		proxy: {
			'/api/ws': { target: api.replace(/^http/, 'ws'), ws: true },
			'/api': api
		}
	},
	test: {
		environment: 'jsdom',
		include: ['src/**/*.test.ts'],
		setupFiles: ['src/test-setup.ts']
	}
});
