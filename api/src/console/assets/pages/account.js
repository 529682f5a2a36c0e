// One account: balance, status and holder as the role allows, the ledger lines with their
// running balance (keyset paging), balance over time, and the transfers in and out with their
// state (keyset paging).

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
  const moreTransfers = h('button', { type: 'button', hidden: true }, 'Load more transfers');
  main.append(
    h('section', { 'aria-labelledby': 'plot-title' }, h('h2', { id: 'plot-title' }, 'Balance over time'), chart),
    h('section', { 'aria-labelledby': 'lines-title' }, h('h2', { id: 'lines-title' }, 'Ledger'), lines, more),
    h('section', { 'aria-labelledby': 'transfers-title' }, h('h2', { id: 'transfers-title' }, 'Transfers in and out'), transfers, moreTransfers));
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
    });
  }
  more.addEventListener('click', () => load());
  load();
  transfersOf(transfers, moreTransfers, id);
}

// The transfers the account sent or received with their state (GET /v1/accounts/{id}/transfers,
// keyset paging), newest debit first among those loaded.
function transfersOf(region, more, id) {
  let cursor = null;
  let rows = [];
  async function load() {
    await busy(region, async () => {
      const page = await get(query(`/v1/accounts/${id}/transfers`, { limit: 50, cursor }));
      rows = rows.concat(page.items);
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
      const sorted = [...rows].sort((a, b) => String(b.debited_at).localeCompare(String(a.debited_at)));
      region.replaceChildren(rows.length === 0 ? h('p', {}, 'No transfer in or out.') : table(
        `Transfers (${rows.length}${cursor ? ' loaded, more available' : ''})`,
        ['Transfer', 'Direction', 'Other account', 'Amount', 'State', 'Reason', 'Debited', 'Updated'],
        sorted.map((t) => {
          const out = t.from_account_id === id;
          const other = out ? t.to_account_id : t.from_account_id;
          return [link(`#/transfer/${t.transfer_id}`, t.transfer_id), out ? 'out' : 'in',
            other ? link(`#/account/${other}`, short(other), { 'aria-label': `account ${other}` }) : null,
            money(t.amount, t.currency), h('span', { class: `badge ${t.status}` }, t.status), t.reason,
            when(t.debited_at), when(t.updated_at)];
        })));
    });
  }
  more.addEventListener('click', () => load());
  load();
}
