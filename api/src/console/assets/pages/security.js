// The security audit trail (auditors, admins): authentication failures, denied permissions,
// rate limiting and admin actions, filtered by principal, outcome and time.

import { h, when, table, field } from '../dom.js';
import { get, query } from '../api.js';
import { busy } from './common.js';

const KINDS = ['authentication_failed', 'permission_denied', 'rate_limited', 'admin_action'];

export function render(main) {
  const sub = field('trail-sub', 'Principal (sub)', { type: 'text', autocomplete: 'off' });
  const kind = field('trail-kind', 'Outcome', {}, 'select');
  kind.control.append(h('option', { value: '' }, 'any'), ...KINDS.map((k) => h('option', { value: k }, k.replace(/_/g, ' '))));
  const since = field('trail-since', 'From (local time)', { type: 'datetime-local', step: 1 });
  const until = field('trail-until', 'Until (local time, exclusive)', { type: 'datetime-local', step: 1 });
  const form = h('form', { class: 'filters', 'aria-label': 'Filter the security trail' },
    sub.node, kind.node, since.node, until.node, h('button', { type: 'submit' }, 'Filter'));
  const out = h('div', { class: 'results' });
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  main.append(h('h1', { tabindex: -1 }, 'Security trail'), form, out, more);
  let cursor = null;
  let rows = [];

  const iso = (value) => (value ? new Date(value).toISOString() : undefined);

  async function load(reset) {
    if (reset) { cursor = null; rows = []; }
    await busy(out, async () => {
      const page = await get(query('/v1/audit/security', {
        sub: sub.control.value.trim(), kind: kind.control.value,
        since: iso(since.control.value), until: iso(until.control.value), limit: 100, cursor,
      }));
      rows = rows.concat(page.items);
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
      out.replaceChildren(rows.length === 0 ? h('p', {}, 'No entry matches.') : table(
        `Security trail, oldest first (${rows.length}${cursor ? ' loaded, more available' : ''})`,
        ['When', 'Outcome', 'Principal', 'Role', 'Client', 'Request', 'Status', 'Count', 'Detail'],
        rows.map((e) => [when(e.occurred_at), e.kind.replace(/_/g, ' '), e.sub, e.role, e.client_ip,
          `${e.method} ${e.path}`, e.status, e.count, e.detail])));
    });
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); load(true); });
  more.addEventListener('click', () => load(false));
  load(true);
}
