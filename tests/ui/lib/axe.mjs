// Runs axe-core in the page and returns violations that are serious or critical.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export async function axeViolations(page, { include } = {}) {
	if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ content: AXE });
	const result = await page.evaluate(async (sel) => {
		// eslint-disable-next-line no-undef
		const r = await axe.run(sel ? { include: [sel] } : document, {
			resultTypes: ['violations'],
			runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] }
		});
		return r.violations.map((v) => ({
			id: v.id,
			impact: v.impact,
			help: v.help,
			nodes: v.nodes.slice(0, 3).map((n) => `${n.target.join(' ')} ${n.html.slice(0, 160)}`)
		}));
	}, include ?? null);
	return result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

export function formatViolations(vs) {
	return vs.map((v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.join(', ')}`).join('\n');
}
