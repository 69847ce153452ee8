/**
 * Ways into the web client other than the sign-up form: a token handed in by an integrating product (`#token=`), an
 * invite link opened while signed out, and a long conversation read backwards page by page. Screenshots go to a
 * temporary folder printed at the start.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { axeViolations, launchBrowser, person, screenshotFolder, snap } from '../helpers/browser.js';
import { until } from '../helpers/raw-client.js';
import { api, EXTERNAL_SECRET, register, signToken, startServer, type TestServer } from '../helpers/server.js';

const PASSWORD = 'violet tugboat fifty lantern';
const HISTORY_LENGTH = 130;

describe('arriving in the web client', () => {
  let server: TestServer;
  let browser: Browser;
  let shots: string;
  let alice: { id: string; name: string; token: string };
  let dave: Page;
  const pageErrors: string[] = [];

  before(async () => {
    // The history test posts its messages faster than a person's message rate allows.
    server = await startServer({ PARLEY_LIMITS_USER_MESSAGE_RATE_PER_SECOND: '10000', PARLEY_LIMITS_USER_MESSAGE_RATE_BURST: '10000' });
    browser = await launchBrowser();
    shots = screenshotFolder('arrivals');
    alice = await register(server, 'alice', PASSWORD);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function newPage(viewport: 'desktop' | 'phone' = 'desktop'): Promise<Page> {
    const page = await (await person(browser, viewport)).newPage();
    // Generous: the suite runs two files at once on a 2-core machine; a passing wait ends as soon as its condition holds.
    page.setDefaultTimeout(30_000);
    page.on('pageerror', (err) => pageErrors.push(err.message));
    return page;
  }

  it('signs in with a product token from #token=, shows a hostile display name as text, and drops the token from the address', async () => {
    const hostileName = '<img src=x onerror="window.__pwned=1">Carol';
    const token = await signToken(EXTERNAL_SECRET, null, 'product-carol', { name: hostileName });
    const carol = await newPage();
    await carol.goto(`${server.url}/#token=${token}`);
    await carol.getByRole('navigation', { name: 'Conversations' }).getByText(hostileName, { exact: true }).waitFor();
    assert.equal(await carol.evaluate(() => location.href), `${server.url}/`, 'the token is no longer in the address');
    assert.ok(!(await carol.evaluate(() => JSON.stringify(history.state ?? ''))).includes(token));

    await carol.getByRole('button', { name: 'New message' }).click();
    await carol.getByRole('dialog', { name: 'New message' }).getByLabel('Username').fill('alice');
    await carol.getByRole('button', { name: 'Start conversation' }).click();
    await carol.getByRole('textbox', { name: 'Message' }).fill('Hello from the product');
    await carol.getByRole('textbox', { name: 'Message' }).press('Enter');
    await carol.locator('li.message .status', { hasText: 'Sent' }).waitFor();

    const alicePage = await newPage();
    await alicePage.goto(server.url);
    await alicePage.getByLabel('Username').fill('alice');
    await alicePage.getByLabel('Password').fill(PASSWORD);
    await alicePage.getByRole('button', { name: 'Log in' }).click();
    const dm = alicePage.getByRole('navigation', { name: 'Conversations' }).locator('a.conversation', { hasText: hostileName });
    await dm.click();
    await alicePage.getByRole('heading', { name: hostileName, level: 1 }).waitFor();
    await alicePage.getByRole('log').getByText('Hello from the product').waitFor();
    for (const page of [carol, alicePage]) {
      assert.equal(await page.evaluate(() => (window as { __pwned?: unknown }).__pwned), undefined, 'no injected script ran');
      assert.equal(await page.locator('img[src=x]').count(), 0, 'no injected element exists');
    }
    await snap(alicePage, shots, '01-alice-dm-from-product-user');

    // A product's token is the product's to revoke: logging out only forgets it here.
    await carol.getByRole('button', { name: 'Log out' }).click();
    await carol.getByRole('heading', { name: 'Log in' }).waitFor();
  });

  it('does not let a #token= link switch an open tab to another account, and takes the token out of the address', async () => {
    const tab = await newPage();
    await tab.goto(`${server.url}/#token=${await signToken(EXTERNAL_SECRET, null, 'product-tab', { name: 'Dave' })}`);
    await tab.getByRole('button', { name: 'Log out' }).waitFor();
    const dialogs: string[] = [];
    tab.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    // A link for someone else followed in the same tab: only the fragment changes.
    const other = await signToken(EXTERNAL_SECRET, null, 'product-mallory', { name: 'Mallory' });
    await tab.evaluate((t) => (location.hash = `#token=${t}`), other);
    await tab.waitForFunction(() => !location.hash.includes('token='));
    await until(() => dialogs.length === 1, 'the user is told why the link was not used', 30_000, 50);
    assert.match(dialogs[0]!, /for Mallory.*signed in as Dave/);
    await tab.reload();
    await tab.getByRole('button', { name: 'Log out' }).waitFor();
    assert.equal(await tab.evaluate(() => JSON.parse(localStorage.getItem('parley.session') ?? 'null')?.user?.id), 'product-tab', 'still Dave after a reload');
    // A mangled fragment (not valid percent-encoding) opens the chat, not a blank page.
    await tab.goto(`${server.url}/#/invite/%E0%A4%A`);
    await tab.getByRole('button', { name: 'Log out' }).waitFor();
  });

  it('joins a private group from an invite link opened while signed out, after creating an account', async () => {
    const group = await api(server, alice.token, 'POST', '/api/v1/conversations', { name: 'Book club', visibility: 'private' });
    assert.equal(group.status, 201);
    const invite = await api(server, alice.token, 'POST', `/api/v1/conversations/${group.body.conversation.id}/invites`, {});
    assert.equal(invite.status, 201);

    dave = await newPage('phone');
    await dave.goto(`${server.url}/#/invite/${invite.body.invite.token}`);
    await dave.getByText('You were invited to a group: log in or create an account to join it.').waitFor();
    await snap(dave, shots, '02-dave-invited-signed-out');
    await dave.getByRole('button', { name: 'Create an account' }).click();
    await dave.getByLabel('Username').fill('dave');
    await dave.getByLabel('Password').fill(PASSWORD);
    await dave.getByRole('button', { name: 'Create an account' }).click();
    await dave.getByRole('heading', { name: 'Book club', level: 1 }).waitFor();
    const members = await api(server, alice.token, 'GET', `/api/v1/conversations/${group.body.conversation.id}/members`);
    assert.deepEqual(members.body.members.map((m: { name: string }) => m.name).sort(), ['alice', 'dave']);
    await snap(dave, shots, '03-dave-joined');
  });

  it('loads older pages of a long conversation as the reader scrolls up, each message once and in order', async () => {
    const group = await api(server, alice.token, 'POST', '/api/v1/conversations', { name: 'Long history', visibility: 'public' });
    const id = group.body.conversation.id as string;
    const expected = Array.from({ length: HISTORY_LENGTH }, (_, i) => `message ${i + 1}`);
    for (const text of expected) {
      const sent = await api(server, alice.token, 'POST', `/api/v1/conversations/${id}/messages`, { key: randomUUID(), text });
      assert.equal(sent.status, 201);
    }

    const page = await newPage();
    await page.goto(server.url);
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('navigation', { name: 'Conversations' }).locator('a.conversation', { hasText: 'Long history' }).click();
    const log = page.getByRole('log');
    await log.getByText(`message ${HISTORY_LENGTH}`, { exact: true }).waitFor();
    const rows = log.locator('li.message .text');
    const firstPage = await rows.count();
    assert.ok(firstPage < HISTORY_LENGTH, `the first page (${firstPage}) is not the whole history`);

    const beginning = log.getByText('This is the beginning of the conversation.');
    // Each scroll to the top fetches one older page; a history of HISTORY_LENGTH needs a few.
    for (let pages = 0; pages < 10 && !(await beginning.isVisible()); pages++) {
      const before = await rows.count();
      await log.evaluate((el) => el.scrollTo({ top: 0 }));
      await page.waitForFunction((n) => document.querySelectorAll('[role=log] li.message .text').length > n
        || document.body.textContent!.includes('This is the beginning of the conversation.'), before);
    }
    await beginning.waitFor();
    assert.deepEqual(await rows.allTextContents(), expected);
    assert.deepEqual(await axeViolations(page), [], 'a long conversation has no accessibility violations');
    await snap(page, shots, '04-long-history-top');
  });

  it('can be used by keyboard alone: log in, open a conversation, write', async () => {
    const page = await newPage();
    await page.goto(server.url);
    await page.getByLabel('Username').focus();
    await page.keyboard.type('dave');
    await page.keyboard.press('Tab');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
    const link = page.getByRole('navigation', { name: 'Conversations' }).locator('a.conversation', { hasText: 'Book club' });
    await link.waitFor();
    // Tab from the top of the page until the conversation's link has the focus (a bounded number of stops).
    for (let stops = 0; stops < 20 && !(await link.evaluate((el) => el === document.activeElement)); stops++) await page.keyboard.press('Tab');
    assert.equal(await link.evaluate((el) => el === document.activeElement), true, 'the conversation is reachable by Tab');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Book club', level: 1 }).waitFor();
    for (let stops = 0; stops < 20 && !(await page.getByRole('textbox', { name: 'Message' }).evaluate((el) => el === document.activeElement)); stops++) {
      await page.keyboard.press('Tab');
    }
    await page.keyboard.type('Typed without a mouse');
    await page.keyboard.press('Enter');
    await page.getByRole('log').locator('li.message', { hasText: 'Typed without a mouse' }).locator('.status', { hasText: 'Sent' }).waitFor();
    // A dialog opened from a button and closed with Escape gives the focus back to that button.
    const opener = page.getByRole('button', { name: 'New message' });
    await opener.focus();
    await page.keyboard.press('Enter');
    await page.getByRole('dialog', { name: 'New message' }).waitFor();
    await page.keyboard.press('Escape');
    await page.getByRole('dialog', { name: 'New message' }).waitFor({ state: 'detached' });
    await page.waitForFunction(() => document.activeElement?.textContent?.trim() === 'New message');
  });

  it('finds a public group by part of its name and joins it', async () => {
    await dave.getByRole('link', { name: 'Back to conversations' }).click();
    await dave.getByRole('button', { name: 'Find groups' }).click();
    const dialog = dave.getByRole('dialog', { name: 'Find groups' });
    // The empty query lists every public group: the private one Dave is in is not among them.
    await dialog.getByRole('button', { name: 'Join Long history' }).waitFor();
    assert.equal(await dialog.getByText('Book club').count(), 0, 'a private group is not found by search');
    await dialog.getByLabel('Group name').fill('histo');
    await dialog.getByRole('button', { name: 'Join Long history' }).click();
    await dave.getByRole('heading', { name: 'Long history', level: 1 }).waitFor();
    await dave.getByRole('log').getByText(`message ${HISTORY_LENGTH}`, { exact: true }).waitFor();
    await snap(dave, shots, '05-dave-joined-public-group');
    assert.deepEqual(pageErrors, [], 'no uncaught errors in any page');
  });
});
