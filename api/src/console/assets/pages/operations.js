// Operations (admin): every projection's offset, log end and lag per partition, refreshed
// live, with lag over time; a rebuild started and followed to its swap; command rates and
// latency from /metrics.

import { h, when, table, field } from '../dom.js';
import { get, post, call } from '../api.js';
import { plot, legend } from '../plot.js';
import { problem, announce } from './common.js';

const EVERY_MS = 2000;
const KEEP = 90;

export function render(main) {
  const status = h('div', { class: 'results', 'aria-live': 'off' });
  const chart = h('figure', { class: 'chart' });
  const rebuildOut = h('div', { id: 'rebuild-status', class: 'results', 'aria-live': 'polite' });
  const which = field('rebuild-projection', 'Projection', {}, 'select');
  for (const name of ['ledger', 'archive']) which.control.append(h('option', { value: name }, name));
  const start = h('button', { type: 'submit' }, 'Start rebuild');
  const form = h('form', { class: 'filters', 'aria-label': 'Rebuild a projection' }, which.node, start);
  const rates = h('div', { class: 'results' });
  main.append(h('h1', { tabindex: -1 }, 'Operations'),
    h('section', { 'aria-labelledby': 'proj-title' }, h('h2', { id: 'proj-title' }, 'Projections'),
      h('p', { class: 'help' }, `Refreshed every ${EVERY_MS / 1000} s.`), status),
    h('section', { 'aria-labelledby': 'lag-title' }, h('h2', { id: 'lag-title' }, 'Lag over time'), chart),
    h('section', { 'aria-labelledby': 'rebuild-title' }, h('h2', { id: 'rebuild-title' }, 'Rebuild'),
      h('p', { class: 'help' }, 'Rebuilds into shadow tables while the live ones serve, then swaps them in.'), form, rebuildOut),
    h('section', { 'aria-labelledby': 'rates-title' }, h('h2', { id: 'rates-title' }, 'Commands'), rates));

  const samples = new Map();
  let watching = null;
  let seenRunning = false;
  let lastMetrics = null;

  async function tick() {
    try {
      const { partitions } = await get('/v1/admin/projections');
      const now = new Date();
      status.replaceChildren(table('Projections by partition', ['Projection', 'Partition', 'Next offset', 'Log end', 'Lag', 'State', 'Updated'],
        partitions.map((p) => [p.projection, p.partition, p.next_offset, p.log_end ?? '—', p.lag ?? '—',
          h('span', { class: `badge ${p.state}` }, p.state) , p.error ? `${when(p.updated_at)} ${p.error}` : when(p.updated_at)])));
      const lag = new Map();
      for (const p of partitions) lag.set(p.projection, (lag.get(p.projection) || 0) + (p.lag || 0));
      for (const [name, v] of lag) {
        const list = samples.get(name) || [];
        list.push({ t: now, v });
        samples.set(name, list.slice(-KEEP));
      }
      const series = [...samples].filter(([name]) => lag.has(name)).map(([name, points]) => ({ name, points }));
      chart.replaceChildren(plot({ title: 'Total lag per projection (events behind the log end)', series, format: (v) => String(Math.round(v)) }),
        legend(series.map((s) => `${s.name}: ${lag.get(s.name)} behind`)));
      if (watching) await followRebuild(partitions);
      await commandRates();
    } catch (e) {
      status.replaceChildren(problem(e));
    }
  }

  async function followRebuild(partitions) {
    const shadow = partitions.filter((p) => p.projection === `${watching.projection}__rebuild`);
    const { rebuilds } = await get('/v1/admin/rebuilds');
    const run = rebuilds.find((r) => r.rebuild_id === watching.rebuild_id);
    if (!run) return;
    if (run.state === 'running') {
      const done = shadow.reduce((s, p) => s + p.next_offset, 0);
      const end = shadow.reduce((s, p) => s + (p.log_end || 0), 0);
      seenRunning = seenRunning || shadow.length > 0;
      rebuildOut.replaceChildren(h('p', {}, `Rebuilding ${run.projection}: ${done} of ${end} events replayed.`),
        h('progress', { max: Math.max(end, 1), value: done, 'aria-label': `Rebuild of ${run.projection}` }));
      return;
    }
    rebuildOut.replaceChildren(h('p', { id: 'rebuild-result', class: run.state === 'swapped' ? 'chain ok' : 'chain bad' },
      run.state === 'swapped'
        ? `Rebuild of ${run.projection} swapped in after ${run.took_ms} ms (finished ${when(run.finished_at)}).`
        : `Rebuild of ${run.projection} failed: ${run.error}`));
    announce(`Rebuild of ${run.projection} ${run.state}`);
    watching = null;
    start.disabled = false;
  }

  async function commandRates() {
    const text = await call('GET', '/metrics');
    const now = Date.now();
    const counts = parse(text, 'logbook_commands_total');
    const sums = parse(text, 'logbook_command_duration_seconds_sum');
    const ns = parse(text, 'logbook_command_duration_seconds_count');
    const rows = [...counts].map(([key, n]) => {
      const before = lastMetrics?.counts.get(key);
      const rate = before === undefined ? '—' : ((n - before) / ((now - lastMetrics.at) / 1000)).toFixed(2);
      const mean = ns.get(key) ? `${((sums.get(key) / ns.get(key)) * 1000).toFixed(1)} ms` : '—';
      return [key.replace(/,/g, ', '), n, rate, mean];
    });
    lastMetrics = { at: now, counts };
    rates.replaceChildren(rows.length === 0 ? h('p', {}, 'No command through this gateway yet.')
      : table('Commands through this gateway (from /metrics)', ['Command, outcome', 'Total', 'Per second', 'Mean latency'], rows));
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    start.disabled = true;
    try {
      const started = await post(`/v1/admin/projections/${which.control.value}/rebuild`);
      watching = started;
      seenRunning = false;
      rebuildOut.replaceChildren(h('p', {}, `Rebuild of ${started.projection} started (${started.rebuild_id}).`));
      announce(`Rebuild of ${started.projection} started`);
    } catch (error) {
      rebuildOut.replaceChildren(problem(error));
      start.disabled = false;
    }
  });

  tick();
  const timer = setInterval(tick, EVERY_MS);
  return () => clearInterval(timer);
}

// `name{command="x",outcome="y"} 3` lines as a map "x,y" -> 3.
function parse(text, name) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labels = line.slice(name.length + 1, line.indexOf('}'));
    const command = /command="([^"]*)"/.exec(labels)?.[1];
    const outcome = /outcome="([^"]*)"/.exec(labels)?.[1];
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (command) out.set(`${command},${outcome}`, value);
  }
  return out;
}
