// Browser test of the web console: headless Debian Chromium (no browser download) driven by
// playwright-core, accessibility checked with axe-core in the page. Run by the Rust test
// tests/tests/suite/console.rs, which starts and seeds the stack and passes:
//   LOGBOOK_URL, TOKEN_<ROLE> for customer (sub alice), support, auditor, analyst, service,
//   admin; ACCOUNT_A (alice's, 83.00 EUR, 6 ledger lines, 8 events), ACCOUNT_B (bob's),
//   TRANSFER_OK (A -> B, completed), TRANSFER_FAILED (A -> nowhere, refunded).
// Optional: CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (writes the docs' screenshots).
// Prints "console: all checks passed" and exits 0 when every check held.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env('LOGBOOK_URL').replace(/\/$/, '');
const A = env('ACCOUNT_A');
const B = env('ACCOUNT_B');
const OK = env('TRANSFER_OK');
const FAILED = env('TRANSFER_FAILED');
const SHOTS = process.env.SCREENSHOT_DIR;
const ORIGIN = new URL(BASE).origin;
const T = 20_000;

const started = Date.now();
const log = (text) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${text}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});

// On a failure, what the page showed and the problems seen, to tell why.
let current = null;
process.on('uncaughtException', async (error) => {
  console.error(`FAILED: ${error.stack || error}`);
  if (current) {
    console.error(`problems seen: ${JSON.stringify(current.problems)}`);
    const html = await current.evaluate(() => document.body.innerHTML).catch(() => '(page gone)');
    console.error(`page: ${current.url()}\n${html.slice(0, 4000)}`);
  }
  process.exit(1);
});

// A fresh browser context (its own sessionStorage) watching for script errors, CSP violations
// and requests to any other origin.
async function open() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/status of (403|404)/.test(m.text())) page.problems.push(`console: ${m.text()}`); });
  page.on('request', (r) => { if (new URL(r.url()).origin !== ORIGIN) page.problems.push(`foreign request: ${r.url()}`); });
  page.setDefaultTimeout(T);
  current = page;
  return { context, page };
}

async function signIn(page, token) {
  await page.goto(`${BASE}/console`);
  await page.waitForSelector('#token');
  // by keyboard: the token field has the focus, Enter submits
  assert.equal(await page.evaluate(() => document.activeElement.id), 'token', 'the token field has the focus');
  await page.keyboard.insertText(token);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#who button');
  const stored = await page.evaluate(() => ({
    session: Object.keys(sessionStorage), local: localStorage.length, cookie: document.cookie,
  }));
  assert.deepEqual(stored, { session: ['logbook.console.token'], local: 0, cookie: '' }, 'the token lives in sessionStorage only');
}

async function menu(page) {
  return page.$$eval('#nav a', (links) => links.map((a) => a.textContent));
}

async function goto(page, hash, heading) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForFunction((text) => document.querySelector('main h1')?.textContent.startsWith(text), heading);
}

async function axe(page, name) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
  }));
  const violations = result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  assert.deepEqual(violations, [], `axe on ${name}`);
  log(`axe: ${name} has no violation (${result.passes.length} rules passed)`);
}

async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, `console-${name}.png`), fullPage: true });
}

function clean(page, role) {
  assert.deepEqual(page.problems, [], `${role}: no script error, CSP violation or foreign request`);
}

const text = (page, selector) => page.$eval(selector, (e) => e.textContent.trim());

// 1. Each role signs in and sees only what the role matrix lets it see.
const expected = {
  customer: { menu: ['Accounts', 'Transfers'], balance: true, ledger: true, history: false, holder: 'email' },
  support: { menu: ['Accounts'], balance: false, ledger: false, history: false, holder: 'name' },
  auditor: { menu: ['Accounts', 'Transfers', 'Security trail'], balance: true, ledger: true, history: true, holder: 'email' },
  analyst: { menu: [] },
  service: { menu: ['Accounts', 'Transfers'], balance: true, ledger: true, history: false, holder: 'email' },
  admin: { menu: ['Accounts', 'Transfers', 'Operations', 'Security trail'], balance: true, ledger: true, history: true, holder: 'email' },
};
for (const [role, want] of Object.entries(expected)) {
  const { context, page } = await open();
  await signIn(page, env(`TOKEN_${role.toUpperCase()}`));
  assert.deepEqual(await menu(page), want.menu, `${role}: menu`);
  if (want.menu.length === 0) {
    await page.waitForSelector('main h1');
    assert.equal(await text(page, 'main h1'), 'Nothing to show', `${role}: nothing to show`);
    await goto(page, `#/account/${A}`, 'Not available');
    await goto(page, '#/security', 'Not available');
    clean(page, role);
    await context.close();
    log(`${role}: no page, as the matrix says`);
    continue;
  }
  await page.waitForSelector('main h1');
  await goto(page, `#/account/${A}`, 'Account');
  await page.waitForSelector('dl.facts');
  await page.waitForFunction(() => document.querySelector('dl.facts')?.textContent.includes('Holder'));
  const summary = await text(page, 'dl.facts');
  assert.ok(summary.includes('active'), `${role}: status shown`);
  assert.ok(summary.includes('Ada Lovelace'), `${role}: holder's name shown`);
  assert.equal(summary.includes('ada@example.org'), want.holder === 'email', `${role}: holder's email as the role allows`);
  assert.equal(await page.$('#balance') !== null, want.balance, `${role}: balance as the role allows`);
  if (want.balance) assert.equal(await text(page, '#balance'), '83.00 EUR', `${role}: balance`);
  if (want.ledger) {
    await page.waitForSelector('table caption >> text=Ledger lines');
    const rows = await page.$$eval('section[aria-labelledby="lines-title"] tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
    assert.equal(rows.length, 6, `${role}: six ledger lines`);
    assert.deepEqual(rows.map((r) => r[4]), ['100.00 EUR', '125.00 EUR', '113.00 EUR', '83.00 EUR', '78.00 EUR', '83.00 EUR'], `${role}: running balance`);
    await page.waitForSelector('svg.plot path.series');
    await page.waitForSelector(`section[aria-labelledby="transfers-title"] >> text=${FAILED}`);
    const transfers = await text(page, 'section[aria-labelledby="transfers-title"] tbody');
    assert.ok(transfers.includes('completed') && transfers.includes('failed'), `${role}: transfers with their state`);
    // why the credit was refused tells about the target: a customer not owning it is not told
    const reason = role === 'customer' ? 'transfer_failed' : 'account_not_found';
    assert.ok(transfers.includes(reason), `${role}: the refusal reads ${reason}: ${transfers}`);
  } else {
    await page.waitForTimeout(300);
    assert.equal(await page.$('#lines-title'), null, `${role}: no ledger`);
  }
  assert.equal(await page.$('a[href^="#/history/"]') !== null, want.history, `${role}: history link as the role allows`);
  if (role === 'customer') {
    // bob's account: the API answers 404, and so does the console
    await goto(page, `#/account/${B}`, 'Account');
    await page.waitForSelector('div.error');
    assert.ok((await text(page, 'div.error')).startsWith('404'), 'customer: a foreign account is not found');
    await goto(page, '#/operations', 'Not available');
  }
  if (role === 'support') await goto(page, '#/history/' + A, 'Not available');
  clean(page, role);
  await context.close();
  log(`${role}: sees ${want.menu.join(', ')}; balance ${want.balance ? 'shown' : 'hidden'}; history ${want.history ? 'linked' : 'not linked'}`);
}

// 2. The auditor's walk: account -> history -> as-of -> verify, and the other pages.
{
  const { context, page } = await open();
  await page.goto(`${BASE}/console`);
  await page.waitForSelector('#token');
  await axe(page, 'sign-in');
  await shot(page, 'signin');
  await signIn(page, env('TOKEN_AUDITOR'));
  await page.waitForSelector('table caption >> text=Accounts');
  await axe(page, 'accounts');
  await goto(page, `#/account/${A}`, 'Account');
  await page.waitForSelector('svg.plot path.series');
  await page.waitForSelector(`section[aria-labelledby="transfers-title"] >> text=${FAILED}`);
  await axe(page, 'account');
  await shot(page, 'account');
  // to the history by keyboard
  await page.focus('a[href^="#/history/"]');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('main h1')?.textContent.startsWith('History'));
  await page.waitForSelector('#chain-status');
  assert.match(await text(page, '#chain-status'), /^Intact: 8 events verified\./, 'chain intact');
  const events = await page.$$eval('section[aria-labelledby="events-title"] tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.deepEqual(events.map((e) => e[0]), ['1', '2', '3', '4', '5', '6', '7', '8'], 'events in sequence');
  assert.deepEqual(events.map((e) => e[1]), ['AccountOpened', 'FundsDeposited', 'FundsDeposited', 'FundsWithdrawn', 'TransferDebited', 'TransferCompleted', 'TransferDebited', 'TransferRefunded'], 'event types');
  assert.ok(events.every((e) => e[7] === 'verified'), 'every event verified');
  assert.ok(events[3][3].startsWith('alice (customer)'), 'the withdrawal shows its actor');
  assert.match(events[1][4], /^…[0-9a-f]{8}$/, 'command id shown');
  // as of the first deposit: 100.00
  await page.click('button[aria-label="State as of event 2"]');
  await page.waitForSelector('#as-of-balance');
  assert.equal(await text(page, '#as-of-balance'), '100.00 EUR', 'as of event 2');
  // as of a typed instant before the account existed: 404 problem
  await page.fill('#as-of', '2000-01-01T00:00:00Z');
  await page.press('#as-of', 'Enter');
  await page.waitForSelector('#as-of-state div.error');
  assert.ok((await text(page, '#as-of-state div.error')).startsWith('404'), 'no state before the first event');
  // as of the last event: the balance now
  await page.click('button[aria-label="State as of event 8"]');
  await page.waitForSelector('#as-of-balance');
  assert.equal(await text(page, '#as-of-balance'), '83.00 EUR', 'as of event 8');
  // the slider, by keyboard: Home is the first event (opened, 0.00), then three steps right
  await page.focus('#as-of-slider');
  await page.keyboard.press('Home');
  await page.waitForFunction(() => document.querySelector('#as-of-balance')?.textContent === '0.00 EUR');
  // the three steps' requests are answered in reverse order: the state shown must stay the last
  // step's (an older answer arriving later must not replace it)
  const delays = [900, 450, 0];
  const stateRequests = (url) => url.pathname.endsWith('/state');
  await page.route(stateRequests, async (route) => {
    await new Promise((resolve) => { setTimeout(resolve, delays.shift() ?? 0); });
    await route.continue();
  });
  for (let i = 0; i < 3; i += 1) await page.keyboard.press('ArrowRight');
  await page.waitForFunction(() => document.querySelector('#as-of-balance')?.textContent === '113.00 EUR');
  await page.waitForTimeout(1200);
  assert.equal(await text(page, '#as-of-balance'), '113.00 EUR', 'a slower answer to an earlier step does not replace the last step');
  await page.unroute(stateRequests);
  await page.keyboard.press('End');
  await page.waitForFunction(() => document.querySelector('#as-of-balance')?.textContent === '83.00 EUR');
  const before = await text(page, '#chain-status');
  await page.click('#verify');
  await page.waitForFunction(() => !document.querySelector('#verify').disabled && document.querySelector('#chain-status'));
  assert.match(await text(page, '#chain-status'), /^Intact: 8 events verified\./, 'verify now: intact');
  log(`auditor: history of 8 events, as-of 100.00, 0.00, 113.00 and 83.00 EUR (field, buttons, slider), chain verified twice (${before.slice(0, 30)}…)`);
  await axe(page, 'history');
  await shot(page, 'history');
  await goto(page, `#/transfer/${FAILED}`, 'Transfer');
  await page.waitForSelector('ol.timeline');
  const steps = await page.$$eval('ol.timeline li', (lis) => lis.map((li) => `${li.className}:${li.querySelector('.step').textContent}`));
  assert.deepEqual(steps.map((s) => s.replace(/ \(.*\)/, '')), ['done:Source debited', 'bad:Credit refused', 'done:Source refunded'], 'refunded transfer steps');
  await axe(page, 'transfer');
  await shot(page, 'transfer');
  await goto(page, `#/transfer/${OK}`, 'Transfer');
  await page.waitForSelector('ol.timeline li.done >> text=Target credited');
  // the security trail, filtered
  await goto(page, '#/security', 'Security trail');
  await page.waitForSelector('table caption >> text=Security trail');
  // unfiltered: alice's denial, support's denial and a request without a token (at least)
  const unfiltered = await page.$$eval('main tbody tr', (trs) => trs.map((tr) => `${tr.cells[1].textContent}/${tr.cells[2].textContent}`));
  for (const want of ['permission denied/alice', 'permission denied/support', 'authentication failed/—']) {
    assert.ok(unfiltered.includes(want), `${want} in the unfiltered trail: ${unfiltered}`);
  }
  await page.fill('#trail-sub', 'alice');
  await page.selectOption('#trail-kind', 'permission_denied');
  await page.click('form[aria-label="Filter the security trail"] button');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('main tbody tr')];
    return rows.length > 0 && rows.every((r) => r.cells[2].textContent === 'alice' && r.cells[1].textContent === 'permission denied');
  });
  assert.ok((await text(page, 'main tbody')).includes('GET /v1/admin/projections'), 'alice\u2019s denial is in the trail');
  await axe(page, 'security trail');
  await shot(page, 'security');
  // each filter below changes what shows, so every wait sees the new answer
  // a time window that ends before anything happened: nothing
  await page.fill('#trail-sub', '');
  await page.selectOption('#trail-kind', '');
  await page.fill('#trail-until', '2000-01-01T00:00');
  await page.click('form[aria-label="Filter the security trail"] button');
  await page.waitForSelector('main >> text=No entry matches.');
  // one that starts long ago and has no end: the entries again
  await page.fill('#trail-until', '');
  await page.fill('#trail-since', '2000-01-01T00:00');
  await page.click('form[aria-label="Filter the security trail"] button');
  await page.waitForSelector('table caption >> text=Security trail');
  // a principal that never called: nothing
  await page.fill('#trail-sub', 'nobody-at-all');
  await page.click('form[aria-label="Filter the security trail"] button');
  await page.waitForSelector('main >> text=No entry matches.');
  clean(page, 'auditor');
  await context.close();
}

// 3. The admin: keyboard to Operations, live projections, a rebuild watched to its swap.
{
  const { context, page } = await open();
  await signIn(page, env('TOKEN_ADMIN'));
  await page.waitForSelector('table caption >> text=Accounts');
  let reached = false;
  for (let i = 0; i < 20 && !reached; i += 1) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement.textContent === 'Operations');
  }
  assert.ok(reached, 'Operations is reachable with Tab');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('main h1')?.textContent === 'Operations');
  await page.waitForSelector('table caption >> text=Projections by partition');
  const projections = await page.$$eval('section[aria-labelledby="proj-title"] tbody tr', (trs) => trs.map((tr) => tr.cells[0].textContent));
  assert.ok(projections.includes('ledger') && projections.includes('archive'), 'both projections listed');
  // live: the lag plot gains samples
  await page.waitForFunction(() => document.querySelectorAll('svg.plot path.series').length >= 2, null, { timeout: T });
  await page.waitForSelector('table caption >> text=Commands through this gateway');
  await axe(page, 'operations');
  await page.selectOption('#rebuild-projection', 'ledger');
  await page.click('form[aria-label="Rebuild a projection"] button');
  await page.waitForSelector('#rebuild-status >> text=started');
  const t0 = Date.now();
  await page.waitForSelector('#rebuild-result', { timeout: 120_000 });
  const result = await text(page, '#rebuild-result');
  assert.match(result, /^Rebuild of ledger swapped in after \d+ ms/, 'the rebuild swapped in');
  log(`admin: ${result} (watched for ${Date.now() - t0} ms)`);
  await shot(page, 'operations');
  // the rebuilt ledger serves the same balance
  await goto(page, `#/account/${A}`, 'Account');
  await page.waitForSelector('#balance');
  assert.equal(await text(page, '#balance'), '83.00 EUR', 'balance after the rebuild');
  await page.waitForSelector('table caption >> text=Ledger lines');
  await goto(page, '#/accounts', 'Accounts');
  await page.waitForSelector('table caption >> text=Accounts');
  await shot(page, 'accounts');
  // signing out forgets the token
  await page.click('#who button');
  await page.waitForSelector('#token');
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'signed out: no token kept');
  clean(page, 'admin');
  await context.close();
}

await browser.close();
console.log(`console: all checks passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
