// A small SVG line plot of values over time, drawn from the data it is given (no library).

import { h } from './dom.js';

const W = 640;
const H = 200;
const PAD = { left: 70, right: 16, top: 12, bottom: 28 };

// series: [{ name, points: [{ t: Date, v: number }] }]; step: hold each value until the next.
export function plot({ title, series, format = String, step = false }) {
  const all = series.flatMap((s) => s.points);
  const svg = h('svg', {
    class: 'plot', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title,
    preserveAspectRatio: 'xMidYMid meet',
  }, h('title', {}, title));
  if (all.length === 0) {
    svg.append(h('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' }, 'no data yet'));
    return svg;
  }
  const t0 = Math.min(...all.map((p) => p.t.getTime()));
  let t1 = Math.max(...all.map((p) => p.t.getTime()));
  if (t1 === t0) t1 = t0 + 1000;
  let v0 = Math.min(0, ...all.map((p) => p.v));
  let v1 = Math.max(0, ...all.map((p) => p.v));
  if (v1 === v0) v1 = v0 + 1;
  const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - ((v - v0) / (v1 - v0)) * (H - PAD.top - PAD.bottom);
  svg.append(
    h('line', { class: 'grid', x1: PAD.left, x2: W - PAD.right, y1: y(0), y2: y(0) }),
    h('text', { class: 'axis', x: PAD.left - 6, y: y(v1) + 4, 'text-anchor': 'end' }, format(v1)),
    h('text', { class: 'axis', x: PAD.left - 6, y: y(v0) + 4, 'text-anchor': 'end' }, format(v0)),
    h('text', { class: 'axis', x: PAD.left, y: H - 8 }, clock(t0)),
    h('text', { class: 'axis', x: W - PAD.right, y: H - 8, 'text-anchor': 'end' }, clock(t1)),
  );
  series.forEach((s, i) => {
    const pts = [...s.points].sort((a, b) => a.t - b.t);
    let d = '';
    pts.forEach((p, j) => {
      const px = x(p.t.getTime()).toFixed(1);
      const py = y(p.v).toFixed(1);
      if (j === 0) d += `M${px},${py}`;
      else if (step) d += `H${px}V${py}`;
      else d += `L${px},${py}`;
    });
    svg.append(h('path', { class: `series s${i % 4}`, d }));
    const last = pts[pts.length - 1];
    svg.append(h('circle', { class: `series-dot s${i % 4}`, cx: x(last.t.getTime()), cy: y(last.v), r: 3 }));
  });
  return svg;
}

function clock(ms) {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

// The legend of a plot as a list (screen readers get the names too).
export function legend(names) {
  return h('ul', { class: 'legend' }, names.map((n, i) => h('li', { class: `s${i % 4}` }, n)));
}
