// A transfer: the saga's steps (debit of the source, credit of the target or refund of the
// source) on a timeline.

import { h, money, when, facts, field, link } from '../dom.js';
import { get } from '../api.js';
import { problem } from './common.js';

export function render(main, id) {
  const lookup = field('transfer-id', 'Transfer id', { type: 'text', autocomplete: 'off', value: id || '', class: 'id' });
  const form = h('form', { class: 'filters', 'aria-label': 'Find a transfer' }, lookup.node, h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (e) => { e.preventDefault(); location.hash = `#/transfer/${lookup.control.value.trim()}`; });
  const out = h('div', { class: 'results' });
  main.append(h('h1', { tabindex: -1 }, 'Transfer'), form, out);
  if (!id) {
    out.append(h('p', {}, 'Enter a transfer id, or follow one from an account\u2019s ledger.'));
    return;
  }
  get(`/v1/transfers/${encodeURIComponent(id)}`).then((t) => {
    out.append(facts([
      ['State', h('span', { class: `badge ${t.status}` }, t.status)],
      ['Amount', money(t.amount, t.currency)],
      ['From', t.from_account_id ? link(`#/account/${t.from_account_id}`, t.from_account_id) : '—'],
      ['To', t.to_account_id ? link(`#/account/${t.to_account_id}`, t.to_account_id) : '—'],
      ['Reference', t.reference],
      t.reason && ['Reason', t.reason],
    ], 'Transfer'), h('h2', {}, 'Saga steps'), timeline(t));
  }).catch((e) => out.append(problem(e)));
}

function timeline(t) {
  const steps = [
    { name: 'Source debited', at: t.debited_at, done: Boolean(t.debited_at) },
  ];
  if (t.refunded_at || t.status === 'failed') {
    steps.push({ name: `Credit refused${t.reason ? ` (${t.reason})` : ''}`, at: null, done: true, bad: true });
    steps.push({ name: 'Source refunded', at: t.refunded_at, done: Boolean(t.refunded_at) });
  } else {
    steps.push({ name: 'Target credited', at: t.credited_at, done: Boolean(t.credited_at) });
  }
  const first = t.debited_at ? new Date(t.debited_at).getTime() : null;
  return h('ol', { class: 'timeline', 'aria-label': 'Saga steps in order' }, steps.map((s) => h('li', { class: s.bad ? 'bad' : s.done ? 'done' : 'waiting' },
    h('span', { class: 'step' }, s.name),
    h('span', { class: 'at' }, s.at ? `${when(s.at)}${first !== null ? ` (+${new Date(s.at).getTime() - first} ms)` : ''}` : s.done ? '' : 'waiting'))));
}
