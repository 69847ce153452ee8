/**
 * Two people use the web client as they would: each in their own browser context (Debian's Chromium), against a real
 * server. Alice is on a desktop screen, Bob on a phone-sized one behind a network that the test can cut. Steps run in
 * order and build on each other; screenshots of each step go to a temporary folder printed at the start.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { axeViolations, launchBrowser, person, screenshotFolder, snap } from '../helpers/browser.js';
import { startCuttableProxy, type CuttableProxy } from '../helpers/cuttable-proxy.js';
import { startServer, type TestServer } from '../helpers/server.js';

const PASSWORD = 'violet tugboat fifty lantern';
/** Reconnecting waits out the SDK's backoff (at most 10 s by default) after the network comes back. */
const RECONNECT_TIMEOUT_MS = 60_000;

describe('two people chatting in the web client', () => {
  let server: TestServer;
  let proxy: CuttableProxy;
  let browser: Browser;
  let aliceContext: BrowserContext;
  let bobContext: BrowserContext;
  let alice: Page;
  let bob: Page;
  let shots: string;
  let inviteLink: string;
  const groupName = 'Launch <img src=x onerror="window.__pwned=1">';
  const pageErrors: string[] = [];

  before(async () => {
    server = await startServer();
    proxy = await startCuttableProxy(server.port);
    browser = await launchBrowser();
    shots = screenshotFolder('two-people-chat');
    aliceContext = await person(browser, 'desktop');
    bobContext = await person(browser, 'phone');
    await aliceContext.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    alice = await aliceContext.newPage();
    bob = await bobContext.newPage();
    for (const page of [alice, bob]) {
      // Generous: the suite runs two files at once on a 2-core machine; a passing wait ends as soon as its condition holds.
      page.setDefaultTimeout(30_000);
      page.on('pageerror', (err) => pageErrors.push(err.message));
    }
  });
  after(async () => {
    await browser?.close();
    await proxy?.close();
    await server?.stop();
  });

  it('signs both up, with an accessible sign-in form', async () => {
    await alice.goto(server.url);
    await alice.getByRole('heading', { name: 'Log in' }).waitFor();
    assert.deepEqual(await axeViolations(alice), [], 'the sign-in page has no accessibility violations');
    await snap(alice, shots, '01-sign-in');
    await signUp(alice, 'alice');
    await bob.goto(proxy.url);
    await signUp(bob, 'bob');
    await alice.getByText('No conversations yet').waitFor();
  });

  it('finds Bob by username, starts a DM, and Bob sees it unread with Alice online', async () => {
    await alice.getByRole('button', { name: 'New message' }).click();
    await alice.getByRole('dialog', { name: 'New message' }).getByLabel('Username').fill('nobody-here');
    await alice.getByRole('button', { name: 'Start conversation' }).click();
    await alice.getByText('Nobody has the username “nobody-here”.').waitFor();
    await alice.getByRole('dialog', { name: 'New message' }).getByLabel('Username').fill('bob');
    await alice.getByRole('button', { name: 'Start conversation' }).click();
    await alice.getByRole('heading', { name: 'bob', level: 1 }).waitFor();
    await composer(alice).fill('Hi Bob! The plan is at https://example.com/plan.');
    await composer(alice).press('Enter');
    await messageStatus(alice, 'Hi Bob!', 'Sent');

    const dm = conversationLink(bob, 'alice');
    await dm.getByLabel('1 unread').waitFor();
    await dm.getByRole('img', { name: 'online' }).waitFor();
    await snap(bob, shots, '02-bob-sidebar-unread');
    await dm.click();
    await waitForTexts(bob, ['Hi Bob! The plan is at https://example.com/plan.']);
    const link = bob.getByRole('log').getByRole('link', { name: 'https://example.com/plan' });
    assert.equal(await link.getAttribute('href'), 'https://example.com/plan');
    assert.equal(await link.getAttribute('rel'), 'noopener noreferrer nofollow');
    await bob.getByRole('log').getByText('Today').waitFor();
  });

  it('shows Bob typing, his reply, and that he saw Alice\'s message', async () => {
    await messageStatus(alice, 'Hi Bob!', 'Seen');
    await composer(bob).pressSequentially('Hello Al');
    await alice.getByText('bob is typing…').waitFor();
    await snap(alice, shots, '03-alice-sees-typing');
    await composer(bob).pressSequentially('ice!');
    await composer(bob).press('Enter');
    await waitForTexts(alice, ['Hi Bob! The plan is at https://example.com/plan.', 'Hello Alice!']);
    await alice.getByText('bob is typing…').waitFor({ state: 'hidden' });
    await messageStatus(bob, 'Hello Alice!', 'Seen');
    await snap(bob, shots, '04-bob-dm-phone');
    assert.deepEqual(await axeViolations(bob), [], 'the phone layout of a conversation has no accessibility violations');
  });

  it('lets Alice edit and delete her own message, for both', async () => {
    await composer(alice).fill('A message with a typo');
    await composer(alice).press('Enter');
    await messageStatus(alice, 'A message with a typo', 'Seen');
    await message(alice, 'A message with a typo').getByRole('button', { name: /^Edit message/ }).click();
    const edit = alice.getByRole('textbox', { name: 'Edit message' });
    await edit.fill('A message, corrected');
    await edit.press('Enter');
    await message(bob, 'A message, corrected').getByText('edited').waitFor();
    await message(alice, 'A message, corrected').getByRole('button', { name: /^Delete message/ }).click();
    await waitForTexts(bob, ['Hi Bob! The plan is at https://example.com/plan.', 'Hello Alice!', 'Message deleted']);
    await waitForTexts(alice, ['Hi Bob! The plan is at https://example.com/plan.', 'Hello Alice!', 'Message deleted']);
  });

  it('creates a private group with an invite link that Bob opens to join', async () => {
    await alice.getByRole('button', { name: 'New group' }).click();
    const dialog = alice.getByRole('dialog', { name: 'New group' });
    await dialog.getByLabel('Name').fill(groupName);
    await dialog.getByLabel(/Private/).check();
    await dialog.getByRole('button', { name: 'Create group' }).click();
    await alice.getByRole('heading', { name: groupName, level: 1 }).waitFor();
    await alice.getByRole('button', { name: 'Members' }).click();
    await alice.getByRole('button', { name: 'Create invite link' }).click();
    const field = alice.getByLabel('Invite link 1');
    await field.waitFor();
    inviteLink = await field.inputValue();
    assert.match(inviteLink, new RegExp(`^${server.url}/#/invite/[^/]+$`));
    await alice.getByRole('button', { name: 'Copy' }).click();
    await alice.getByRole('button', { name: 'Copied' }).waitFor();
    assert.equal(await alice.evaluate(() => navigator.clipboard.readText()), inviteLink);
    assert.deepEqual(await axeViolations(alice), [], 'the desktop layout with the member panel has no accessibility violations');
    await snap(alice, shots, '05-alice-group-invite');

    // Bob's browser reaches the server through the proxy: the same link, on his origin.
    await bob.goto(inviteLink.replace(server.url, proxy.url));
    await bob.getByRole('heading', { name: groupName, level: 1 }).waitFor();
    await alice.locator('.member', { hasText: 'bob' }).getByText('Member').waitFor();
    await alice.getByText('Private group · 2 members').waitFor();
  });

  it('chats in the group, keeping hostile text as text', async () => {
    const hostile = '<script>window.__pwned=2</script><b>bold?</b> javascript:alert(1)';
    await composer(bob).fill(hostile);
    await composer(bob).press('Enter');
    await composer(alice).fill('Welcome to the group');
    await composer(alice).press('Enter');
    await waitForTexts(alice, [hostile, 'Welcome to the group']);
    await waitForTexts(bob, [hostile, 'Welcome to the group']);
    for (const page of [alice, bob]) {
      assert.equal(await page.evaluate(() => (window as { __pwned?: unknown }).__pwned), undefined, 'no injected script ran');
      assert.equal(await page.locator('[role=log] b, [role=log] script, img[src=x]').count(), 0, 'no injected element exists');
      assert.equal(await page.getByRole('log').getByRole('link').count(), 0, 'javascript: is not made a link');
    }
    await alice.getByRole('heading', { name: groupName, level: 1 }).waitFor();
    await snap(alice, shots, '06-alice-group-chat');

    // On a phone, the member list covers the conversation until closed; Bob, a plain member, manages nothing.
    await bob.getByRole('button', { name: 'Members' }).click();
    const details = bob.getByRole('complementary', { name: 'Details' });
    await details.locator('.member', { hasText: 'alice' }).getByText('Owner').waitFor();
    assert.equal(await details.getByRole('button', { name: /^(Remove|Ban|Make) / }).count(), 0);
    assert.equal(await details.getByRole('button', { name: 'Create invite link' }).count(), 0);
    assert.deepEqual(await axeViolations(bob), [], 'the member list on a phone has no accessibility violations');
    await snap(bob, shots, '06-bob-members-phone');
    await details.getByRole('button', { name: 'Close details' }).click();
    await details.waitFor({ state: 'detached' });
  });

  it('brings Bob back after a network cut with every change once, in order, and his queued message sent', async () => {
    proxy.cut();
    await bob.getByText('Reconnecting…').waitFor();
    await composer(bob).fill('Written while offline');
    await composer(bob).press('Enter');
    await message(bob, 'Written while offline').getByText('Waiting for connection…').waitFor();
    await snap(bob, shots, '07-bob-offline-queued');
    // An edit needs the connection (it is not queued like a send): Bob is told, and keeps what he wrote.
    await bob.locator('li.message.mine').first().getByRole('button', { name: /^Edit message/ }).click();
    await bob.getByRole('textbox', { name: 'Edit message' }).fill('An edit made offline');
    await bob.getByRole('textbox', { name: 'Edit message' }).press('Enter');
    await bob.getByRole('alert').getByText('Not connected: the edit was not saved. Save it again once reconnected.').waitFor();
    assert.equal(await bob.getByRole('textbox', { name: 'Edit message' }).inputValue(), 'An edit made offline');
    await bob.getByRole('textbox', { name: 'Edit message' }).press('Escape');

    await composer(alice).fill('First while Bob is away');
    await composer(alice).press('Enter');
    await composer(alice).fill('Second while Bob is away');
    await composer(alice).press('Enter');
    await messageStatus(alice, 'Second while Bob is away', 'Sent');
    await message(alice, 'Welcome to the group').getByRole('button', { name: /^Edit message/ }).click();
    await alice.getByRole('textbox', { name: 'Edit message' }).fill('Welcome to the group, Bob');
    await alice.getByRole('textbox', { name: 'Edit message' }).press('Enter');
    await message(alice, 'Welcome to the group, Bob').getByText('edited').waitFor();
    await message(alice, 'First while Bob is away').getByRole('button', { name: /^Delete message/ }).click();
    await message(alice, 'Message deleted').waitFor();

    proxy.restore();
    await bob.locator('.banner').waitFor({ state: 'detached', timeout: RECONNECT_TIMEOUT_MS });
    const expected = [
      '<script>window.__pwned=2</script><b>bold?</b> javascript:alert(1)',
      'Welcome to the group, Bob',
      'Message deleted',
      'Second while Bob is away',
      'Written while offline',
    ];
    await waitForTexts(bob, expected, RECONNECT_TIMEOUT_MS);
    await messageStatus(bob, 'Written while offline', 'Seen by alice');
    await waitForTexts(alice, expected);
    await snap(bob, shots, '08-bob-back-online');
  });

  it('lets the owner promote, remove and ban a member, who is told, and lift the ban', async () => {
    const bobRow = alice.locator('.members .member', { hasText: 'bob' });
    await bobRow.getByRole('button', { name: 'Make bob an admin' }).click();
    await bobRow.getByText('Admin').waitFor();
    await bobRow.getByRole('button', { name: 'Remove bob' }).click();
    await bobRow.waitFor({ state: 'detached' });
    await bob.getByRole('alert').getByText(`You are no longer in ${groupName} (kicked).`).waitFor();
    await conversationLink(bob, groupName).waitFor({ state: 'detached' });
    // Where the conversation was, a way back (on a phone the sidebar is hidden while a conversation is open).
    await bob.getByRole('main').getByRole('link', { name: 'Back to conversations' }).waitFor();
    await snap(bob, shots, '09-bob-removed');

    // The invite link still works: Bob comes back, and is banned this time.
    await bob.goto(inviteLink.replace(server.url, proxy.url));
    await bob.getByRole('heading', { name: groupName, level: 1 }).waitFor();
    await bobRow.getByRole('button', { name: 'Ban bob' }).click();
    await bob.getByRole('alert').getByText(`You are no longer in ${groupName} (banned).`).waitFor();
    const lift = alice.getByRole('button', { name: 'Lift the ban on bob' });
    await lift.click();
    await lift.waitFor({ state: 'detached' });
  });

  it('revokes an invite link, which then no longer joins', async () => {
    await alice.getByRole('button', { name: 'Revoke' }).click();
    await alice.getByLabel('Invite link 1').waitFor({ state: 'detached' });
    await bob.goto(inviteLink.replace(server.url, proxy.url));
    await bob.getByRole('alert').getByText(/The invite link did not work/).waitFor();
  });

  it('logs out and back in, finding the conversations again', async () => {
    await alice.getByRole('button', { name: 'Log out' }).click();
    await alice.getByRole('heading', { name: 'Log in' }).waitFor();
    await alice.reload();
    await alice.getByRole('heading', { name: 'Log in' }).waitFor();
    await alice.getByLabel('Username').fill('alice');
    await alice.getByLabel('Password').fill(PASSWORD);
    await alice.getByRole('button', { name: 'Log in' }).click();
    await conversationLink(alice, groupName).waitFor();
    await conversationLink(alice, 'bob').click();
    await waitForTexts(alice, ['Hi Bob! The plan is at https://example.com/plan.', 'Hello Alice!', 'Message deleted']);
    await messageStatus(alice, 'Hi Bob!', 'Seen');
    await snap(alice, shots, '10-alice-dm-desktop');
    assert.deepEqual(pageErrors, [], 'no uncaught errors in either page');
  });
});

async function signUp(page: Page, username: string): Promise<void> {
  await page.getByRole('button', { name: 'Create an account' }).click();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create an account' }).click();
  await page.getByRole('navigation', { name: 'Conversations' }).getByText(username, { exact: true }).waitFor();
}

function composer(page: Page) {
  return page.getByRole('textbox', { name: 'Message' });
}

function conversationLink(page: Page, title: string) {
  return page.getByRole('navigation', { name: 'Conversations' }).locator('a.conversation', { has: page.getByText(title, { exact: true }) });
}

function message(page: Page, text: string) {
  return page.getByRole('log').locator('li.message', { has: page.locator('.text', { hasText: text }) });
}

async function messageStatus(page: Page, text: string, status: string): Promise<void> {
  await message(page, text).locator('.status', { hasText: status }).waitFor();
}

/** Waits until the open conversation shows exactly these messages (text of each, pending ones too), in this order. */
async function waitForTexts(page: Page, expected: string[], timeout = 30_000): Promise<void> {
  const read = () => page.getByRole('log').locator('li.message .text').allTextContents();
  try {
    await page.waitForFunction(
      (want) => JSON.stringify(Array.from(document.querySelectorAll('[role=log] li.message .text'), (e) => e.textContent)) === JSON.stringify(want),
      expected, { timeout },
    );
  } catch {
    assert.deepEqual(await read(), expected, 'the messages shown');
  }
}
