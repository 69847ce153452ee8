import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/**
 * Debian's Chromium (`apt-get install chromium`, scripts/install-test-deps.sh) driven by playwright-core: the
 * browser playwright would download cannot be fetched here, and the distribution's is kept up to date by apt.
 */
export const CHROMIUM = process.env.PARLEY_TEST_CHROMIUM ?? '/usr/bin/chromium';

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
}

/** A folder for a test's screenshots under the system's temporary folder (printed, never committed). */
export function screenshotFolder(name: string): string {
  const dir = join(tmpdir(), 'parley-screenshots', `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(dir, { recursive: true });
  console.log(`# screenshots of ${name}: ${dir}`);
  return dir;
}

/** Saves a full-page screenshot named `<n>-<label>.png` into `dir`. */
export async function snap(page: Page, dir: string, label: string): Promise<string> {
  const path = join(dir, `${label}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** A browser context as one person: its own storage (session), a desktop or a phone-sized viewport. */
export function person(browser: Browser, viewport: 'desktop' | 'phone' = 'desktop'): Promise<BrowserContext> {
  return browser.newContext(viewport === 'phone'
    ? { viewport: { width: 390, height: 780 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 }
    : { viewport: { width: 1200, height: 800 } });
}

const axeSource = (() => {
  const require = createRequire(import.meta.url);
  return require('axe-core').source as string;
})();

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: string[]; failureSummary?: string }>;
}

/**
 * Runs axe-core in the page (WCAG 2.x A and AA rules, colour contrast among them) and returns its violations, each
 * shortened to what a failing assertion should print.
 */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  // Evaluated through the DevTools protocol: the page's Content-Security-Policy refuses inline <script> tags.
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run: (ctx: unknown, opts: unknown) => Promise<{ violations: AxeViolation[] }> } }).axe;
    const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return result.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target, failureSummary: n.failureSummary })),
    }));
  });
}
