import { fireEvent, render, screen } from '@testing-library/svelte';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { events } from '$lib/stores/events.svelte';
import FormatForm from './FormatForm.svelte';
import StrengthMeter from './StrengthMeter.svelte';
import UsageBar from './UsageBar.svelte';

afterEach(() => vi.unstubAllGlobals());

const target = { name: 'sdb', path: '/dev/sdb', size_bytes: 64 * 1024 ** 3, model: 'USB stick', serial: 'AA11BB22', format_confirm: 'AA11BB22' };

describe('FormatForm', () => {
	it('formats only after the device name is typed, names the disk by its serial, then follows progress', async () => {
		const fetch = vi.fn(async () => new Response(JSON.stringify({ task_id: 'fmt-1' }), { status: 202 }));
		vi.stubGlobal('fetch', fetch);
		const ondone = vi.fn();
		render(FormatForm, { props: { target, ondone } });
		const button = screen.getByRole('button', { name: 'Format sdb' });
		expect(button).toBeDisabled();
		const confirm = screen.getByLabelText('Type sdb to confirm');
		await fireEvent.input(confirm, { target: { value: 'sda' } });
		expect(button).toBeDisabled();
		await fireEvent.input(confirm, { target: { value: 'sdb' } });
		expect(button).toBeEnabled();
		await fireEvent.click(button);
		await vi.waitFor(() => expect(fetch).toHaveBeenCalled());
		const [url, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
		expect(url).toBe('/api/storage/format');
		expect(JSON.parse(String(init.body))).toEqual({ device: '/dev/sdb', fs_type: 'ext4', label: 'data', confirm: 'AA11BB22' });

		events.dispatch({ type: 'task.progress', ts: 1, data: { task_id: 'fmt-1', label: 'Formatting sdb', percent: 60, done: false, error: null } });
		await vi.waitFor(() => expect(screen.getByRole('progressbar')).toHaveAttribute('aria-valuenow', '60'));
		events.dispatch({ type: 'task.progress', ts: 2, data: { task_id: 'fmt-1', label: 'Formatting sdb', percent: 100, done: true, error: null } });
		await vi.waitFor(() => expect(ondone).toHaveBeenCalledWith(true));
		expect(screen.getByRole('status')).toHaveTextContent('Formatted sdb as ext4.');
	});

	it('shows a server error next to the confirmation field', async () => {
		vi.stubGlobal(
			'fetch',
			async () =>
				new Response(JSON.stringify({ error: { code: 'confirm_mismatch', message: 'Type the device path to confirm.', field: 'confirm' } }), {
					status: 422
				})
		);
		render(FormatForm, { props: { target } });
		const confirm = screen.getByLabelText('Type sdb to confirm');
		await fireEvent.input(confirm, { target: { value: '/dev/sdb' } });
		await fireEvent.click(screen.getByRole('button', { name: 'Format sdb' }));
		const err = await screen.findByText('Type the device path to confirm.');
		expect(confirm).toHaveAttribute('aria-invalid', 'true');
		expect(confirm.getAttribute('aria-describedby')).toContain(err.id);
		expect(document.body.textContent).not.toContain('{');
	});
});

describe('StrengthMeter', () => {
	it('says how strong a password is', async () => {
		const { rerender } = render(StrengthMeter, { id: 's', password: 'abc' });
		expect(screen.getByText(/Too short/)).toBeInTheDocument();
		await rerender({ id: 's', password: 'Tr0ub4dor&3-horse' });
		expect(screen.getByText('Strength: Strong')).toBeInTheDocument();
	});
});

describe('UsageBar', () => {
	it('is a meter with readable text', () => {
		render(UsageBar, { label: 'data usage', used: 25 * 1024 ** 3, total: 100 * 1024 ** 3 });
		const m = screen.getByRole('meter', { name: 'data usage' });
		expect(m).toHaveAttribute('aria-valuenow', '25');
		expect(m).toHaveAttribute('aria-valuetext', '25.0 GB of 100 GB used');
	});
});
