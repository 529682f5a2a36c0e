// One account: balance, status and holder as the role allows, the ledger lines with their
// running balance (keyset paging), balance over time, and the transfers in and out with their
// state.

import { h, money, when, short, facts, table, link } from '../dom.js';
import { get, query, may } from '../api.js';
import { plot } from '../plot.js';
import { problem, busy } from './common.js';

export function render(main, id) {
  const summary = h('section', { 'aria-labelledby': 'summary-title' }, h('h2', { id: 'summary-title' }, 'Summary'));
  main.append(h('h1', { tabindex: -1 }, 'Account ', h('span', { class: 'mono' }, id)), summary);
  get(`/v1/accounts/${encodeURIComponent(id)}`).then((account) => {
    summary.append(facts([
      ['Status', h('span', { class: `badge ${account.status}` }, account.status)],
      ['Currency', account.currency],
      'balance' in account && ['Balance', h('strong', { id: 'balance' }, money(account.balance, account.currency))],
      'overdraft_limit' in account && ['Overdraft limit', money(account.overdraft_limit, account.currency)],
      'owner_id' in account && ['Owner', account.owner_id],
      'version' in account && ['Version (events)', account.version],
      'opened_at' in account && ['Opened', when(account.opened_at)],
      ['Holder', holder(account.holder)],
    ], 'Account summary'));
    if (may('audit')) summary.append(h('p', {}, link(`#/history/${id}`, 'History, as-of state and hash chain')));
    if ('balance' in account && may('readBalances')) ledger(main, id, account.currency);
  }).catch((e) => summary.append(problem(e)));
}

function holder(data) {
  if (!data) return 'not shown';
  if (data.erased) return 'erased';
  if (data.unavailable) return 'sealed (no key here)';
  const address = data.address ? [...(data.address.lines || []), data.address.postal_code, data.address.city, data.address.country].filter(Boolean).join(', ') : null;
  return facts([
    ['Name', data.name],
    data.email && ['Email', data.email],
    address && ['Address', address],
    data.birth_date && ['Birth date', data.birth_date],
  ], 'Holder');
}

function ledger(main, id, currency) {
  const chart = h('figure', { class: 'chart' });
  const lines = h('div', { class: 'results' });
  const more = h('button', { type: 'button', hidden: true }, 'Load more lines');
  const transfers = h('div', { class: 'results' });
  main.append(
    h('section', { 'aria-labelledby': 'plot-title' }, h('h2', { id: 'plot-title' }, 'Balance over time'), chart),
    h('section', { 'aria-labelledby': 'lines-title' }, h('h2', { id: 'lines-title' }, 'Ledger'), lines, more),
    h('section', { 'aria-labelledby': 'transfers-title' }, h('h2', { id: 'transfers-title' }, 'Transfers in and out'), transfers));
  let cursor = null;
  let rows = [];
  async function load() {
    await busy(lines, async () => {
      const page = await get(query(`/v1/accounts/${id}/transactions`, { limit: 50, cursor }));
      rows = rows.concat(page.items);
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
      lines.replaceChildren(rows.length === 0 ? h('p', {}, 'No ledger line yet.') : table(
        `Ledger lines, oldest first (${rows.length}${cursor ? ' loaded, more available' : ''})`,
        ['#', 'When', 'What', 'Amount', 'Balance after', 'Reference', 'Transfer', 'Other account'],
        rows.map((l) => [l.sequence, when(l.occurred_at), l.kind.replace(/_/g, ' '),
          h('span', { class: l.amount < 0 ? 'out' : 'in' }, money(l.amount, currency)),
          money(l.balance_after, currency), l.reference,
          l.transfer_id ? link(`#/transfer/${l.transfer_id}`, short(l.transfer_id), { 'aria-label': `transfer ${l.transfer_id}` }) : null,
          l.counterparty_id ? link(`#/account/${l.counterparty_id}`, short(l.counterparty_id), { 'aria-label': `account ${l.counterparty_id}` }) : null])));
      chart.replaceChildren(
        plot({
          title: `Balance of the ${rows.length} ledger lines loaded, in ${currency}`,
          series: [{ name: 'balance', points: rows.map((l) => ({ t: new Date(l.occurred_at), v: l.balance_after })) }],
          format: (v) => money(Math.round(v), currency),
          step: true,
        }),
        h('figcaption', {}, `Balance after each of the ${rows.length} ledger lines loaded (load more lines to extend it).`));
      await transferStates(transfers, rows);
    });
  }
  more.addEventListener('click', () => load());
  load();
}

// The transfers named by the loaded lines, with the direction and their state now.
async function transferStates(region, rows) {
  const seen = new Map();
  for (const l of rows) {
    if (l.transfer_id && !seen.has(l.transfer_id)) seen.set(l.transfer_id, l.kind === 'transfer_credit' ? 'in' : 'out');
  }
  if (seen.size === 0) {
    region.replaceChildren(h('p', {}, 'No transfer in the lines loaded.'));
    return;
  }
  const ids = [...seen.keys()].slice(-20);
  const states = await Promise.all(ids.map((t) => get(`/v1/transfers/${t}`).catch((e) => ({ transfer_id: t, status: `unknown (${e.status || e.message})` }))));
  region.replaceChildren(table(`Transfers (${states.length})`, ['Transfer', 'Direction', 'Amount', 'State', 'Reason', 'Updated'],
    states.map((t) => [link(`#/transfer/${t.transfer_id}`, t.transfer_id), seen.get(t.transfer_id),
      money(t.amount, t.currency), h('span', { class: `badge ${t.status}` }, t.status), t.reason, when(t.updated_at)])));
}
