// An account's history for auditors: every event in sequence with actor, time, command and
// correlation ids; the state as of any instant; the hash chain's status per event and a
// "verify now" button.

import { h, money, when, short, facts, table, field, link, clear } from '../dom.js';
import { get, query } from '../api.js';
import { problem, busy, announce } from './common.js';

export function render(main, id) {
  const chain = h('div', { id: 'chain', class: 'results', 'aria-live': 'polite' });
  const verify = h('button', { type: 'button', id: 'verify' }, 'Verify now');
  const asOf = field('as-of', 'As of (RFC 3339 instant, e.g. 2026-11-30T14:00:00Z)', { type: 'text', autocomplete: 'off', spellcheck: 'false', class: 'id' });
  const stateOut = h('div', { id: 'as-of-state', class: 'results', 'aria-live': 'polite' });
  // a slider over the events loaded: each stop is the instant of one event
  const slider = field('as-of-slider', 'Or slide through the events', { type: 'range', min: 1, max: 1, step: 1, value: 1 });
  slider.control.addEventListener('change', () => {
    const event = rows[Number(slider.control.value) - 1];
    if (!event) return;
    asOf.control.value = event.occurred_at;
    showState();
  });
  slider.control.addEventListener('input', () => {
    const event = rows[Number(slider.control.value) - 1];
    if (event) slider.control.setAttribute('aria-valuetext', `event ${event.sequence}, ${event.event_type}, ${when(event.occurred_at)}`);
  });
  const asOfForm = h('form', { class: 'filters', 'aria-label': 'State as of an instant' }, asOf.node, h('button', { type: 'submit' }, 'Show state'));
  const events = h('div', { class: 'results' });
  const more = h('button', { type: 'button', hidden: true }, 'Load more events');
  main.append(
    h('h1', { tabindex: -1 }, 'History of ', h('span', { class: 'mono' }, id)),
    h('p', {}, link(`#/account/${id}`, 'Back to the account')),
    h('section', { 'aria-labelledby': 'chain-title' }, h('h2', { id: 'chain-title' }, 'Hash chain'), chain, verify),
    h('section', { 'aria-labelledby': 'asof-title' }, h('h2', { id: 'asof-title' }, 'State as of an instant'), asOfForm, slider.node, stateOut),
    h('section', { 'aria-labelledby': 'events-title' }, h('h2', { id: 'events-title' }, 'Events'), events, more));

  let report = null;
  let cursor = null;
  let rows = [];

  function chainOf(sequence) {
    if (!report) return 'not checked';
    const brk = report.first_break;
    if (!brk) return 'verified';
    if (sequence < brk.sequence) return 'verified';
    return sequence === brk.sequence ? `broken here (${brk.kind})` : `after the break at ${brk.sequence}`;
  }

  function draw() {
    events.replaceChildren(rows.length === 0 ? h('p', {}, 'No event.') : table(
      `Events in sequence (${rows.length}${cursor ? ' loaded, more available' : ''})`,
      ['#', 'Type', 'Occurred', 'Actor', 'Command', 'Correlation', 'Data', 'Chain', 'As of'],
      rows.map((e) => [e.sequence, e.event_type, when(e.occurred_at), `${e.actor.sub} (${e.actor.role})`,
        h('span', { class: 'mono', title: e.command_id }, short(e.command_id)),
        h('span', { class: 'mono', title: e.correlation_id }, short(e.correlation_id)),
        summary(e.data),
        h('span', { class: `chain ${chainOf(e.sequence).startsWith('verified') ? 'ok' : report ? 'bad' : ''}` }, chainOf(e.sequence)),
        h('button', { type: 'button', class: 'small', 'aria-label': `State as of event ${e.sequence}`,
          onclick: () => { asOf.control.value = e.occurred_at; slider.control.value = String(rows.indexOf(e) + 1); showState(); } }, 'as of')])));
  }

  async function loadEvents() {
    await busy(events, async () => {
      const page = await get(query(`/v1/audit/accounts/${encodeURIComponent(id)}/events`, { limit: 100, cursor }));
      rows = rows.concat(page.items);
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
      slider.control.max = String(Math.max(rows.length, 1));
      draw();
    });
  }

  async function check() {
    verify.disabled = true;
    clear(chain).append(h('p', {}, 'Checking\u2026'));
    await busy(chain, async () => {
      report = await get(query('/v1/audit/verify', { account_id: id }));
      const brk = report.first_break;
      chain.replaceChildren(h('p', { id: 'chain-status', class: brk ? 'chain bad' : 'chain ok' },
        brk ? `Broken at sequence ${brk.sequence} (${brk.kind}); ${report.breaks} break(s) in ${report.events} events.`
          : `Intact: ${report.events} events verified.`,
        ` Checked ${when(new Date().toISOString())} in ${report.took_ms} ms.`));
      announce(brk ? `Hash chain broken at sequence ${brk.sequence}` : 'Hash chain intact');
      draw();
    });
    verify.disabled = false;
  }

  // the newest request wins: answers to earlier ones (a slider moved several steps at once can
  // have them answered out of order) are dropped, errors included
  let asked = 0;
  async function showState() {
    const at = asOf.control.value.trim();
    asked += 1;
    const mine = asked;
    await busy(stateOut, async () => {
      let s;
      try {
        s = await get(query(`/v1/audit/accounts/${encodeURIComponent(id)}/state`, { as_of: at }));
      } catch (error) {
        if (mine === asked) throw error;
        return;
      }
      if (mine !== asked) return;
      stateOut.replaceChildren(facts([
        ['As of', when(s.as_of)],
        ['Balance', h('strong', { id: 'as-of-balance' }, money(s.balance, s.currency))],
        ['Status', s.status],
        ['Overdraft limit', money(s.overdraft_limit, s.currency)],
        ['Sequence', s.sequence],
        ['Last event', `${when(s.last_event_at)} at ${s.position}`],
      ], 'State as of the instant'));
      announce(`State as of ${at}: balance ${money(s.balance, s.currency)}`);
    });
  }

  asOfForm.addEventListener('submit', (e) => { e.preventDefault(); showState(); });
  verify.addEventListener('click', check);
  more.addEventListener('click', loadEvents);
  loadEvents().then(check);
}

function summary(data) {
  if (!data) return '';
  const parts = [];
  for (const key of ['amount', 'balance_after', 'currency', 'owner_id', 'reason', 'reference', 'transfer_id']) {
    if (data[key] !== undefined && data[key] !== null) parts.push(`${key}=${key === 'transfer_id' ? short(data[key]) : data[key]}`);
  }
  return parts.join(' ');
}
