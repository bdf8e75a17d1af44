import { fireEvent, render, screen } from '@testing-library/svelte';
import { afterEach, describe, expect, it, vi } from 'vitest';
import FolderPicker from './FolderPicker.svelte';

afterEach(() => vi.unstubAllGlobals());

const listings: Record<string, unknown> = {
	'/api/storage/folders': {
		path: '',
		parent: null,
		entries: [
			{ name: 'data', path: '/storage/disks/data' },
			{ name: 'Shares', path: '/storage/shares' }
		]
	},
	'/api/storage/folders?path=%2Fstorage%2Fdisks%2Fdata': {
		path: '/storage/disks/data',
		parent: null,
		entries: [{ name: 'photos', path: '/storage/disks/data/photos' }]
	}
};

function stubServer() {
	const fetch = vi.fn(async (url: string) => {
		const body = listings[url];
		return body
			? new Response(JSON.stringify(body), { status: 200 })
			: new Response(JSON.stringify({ error: { code: 'folder_outside_roots', message: 'Not a data folder.' } }), { status: 422 });
	});
	vi.stubGlobal('fetch', fetch);
	return fetch;
}

describe('FolderPicker', () => {
	it('starts at the data disks, goes into a folder and back up', async () => {
		stubServer();
		render(FolderPicker, { props: { id: 'p', value: '' } });
		await fireEvent.click(await screen.findByRole('button', { name: /^data/ }));
		expect(await screen.findByRole('button', { name: /photos/ })).toBeInTheDocument();
		expect(screen.getByText('/storage/disks/data', { selector: '.path' })).toBeInTheDocument();
		await fireEvent.click(screen.getByRole('button', { name: /Up/ }));
		expect(await screen.findByRole('button', { name: /Shares/ })).toBeInTheDocument();
		expect(screen.getByRole('button', { name: /Up/ })).toBeDisabled();
	});

	it('says when no data disk is mounted', async () => {
		vi.stubGlobal('fetch', async () => new Response(JSON.stringify({ path: '', parent: null, entries: [] }), { status: 200 }));
		render(FolderPicker, { props: { id: 'p' } });
		expect(await screen.findByText(/No data disk is mounted/)).toBeInTheDocument();
	});

	it('shows a server error in words', async () => {
		vi.stubGlobal('fetch', async () => new Response('oops', { status: 500 }));
		render(FolderPicker, { props: { id: 'p' } });
		expect(await screen.findByText('The server failed to do this (HTTP 500).')).toBeInTheDocument();
	});
});
