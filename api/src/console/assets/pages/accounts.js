// Accounts: a filtered listing with keyset paging; each row opens the account page.

import { h, money, table, field, link } from '../dom.js';
import { get, query, may } from '../api.js';
import { problem, busy } from './common.js';

export function render(main) {
  const full = may('readBalances');
  const owner = field('filter-owner', 'Owner id', { type: 'text', autocomplete: 'off' });
  const status = field('filter-status', 'Status', {}, 'select');
  for (const s of ['', 'active', 'frozen', 'closed']) status.control.append(h('option', { value: s }, s || 'any'));
  const open = field('open-id', 'Account id', { type: 'text', autocomplete: 'off', class: 'id' });
  const results = h('div', { class: 'results' });
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  let cursor = null;
  let rows = [];

  async function load(reset) {
    if (reset) { cursor = null; rows = []; }
    await busy(results, async () => {
      const page = await get(query('/v1/accounts', {
        owner_id: owner.control.value, status: status.control.value, limit: 25, cursor,
      }));
      rows = rows.concat(page.items);
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
      results.replaceChildren(rows.length === 0 ? h('p', {}, 'No account matches.') :
        table(`Accounts (${rows.length}${cursor ? ', more available' : ''})`,
          full ? ['Account', 'Owner', 'Currency', 'Balance', 'Status'] : ['Account', 'Currency', 'Status'],
          rows.map((a) => full
            ? [link(`#/account/${a.account_id}`, a.account_id), a.owner_id, a.currency, money(a.balance, a.currency), a.status]
            : [link(`#/account/${a.account_id}`, a.account_id), a.currency, a.status])));
    });
  }

  const filters = h('form', { class: 'filters', 'aria-label': 'Filter accounts' },
    owner.node, status.node, h('button', { type: 'submit' }, 'Filter'));
  filters.addEventListener('submit', (e) => { e.preventDefault(); load(true); });
  const jump = h('form', { class: 'filters', 'aria-label': 'Open an account by id' },
    open.node, h('button', { type: 'submit' }, 'Open'));
  jump.addEventListener('submit', (e) => { e.preventDefault(); location.hash = `#/account/${open.control.value.trim()}`; });
  more.addEventListener('click', () => load(false));
  main.append(h('h1', { tabindex: -1 }, 'Accounts'), jump, filters, results, more);
  load(true).catch((e) => results.replaceChildren(problem(e)));
}
