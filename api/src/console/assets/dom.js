// Small DOM helpers: building elements, formatting money, times and ids.

// h('a', {href: '#x', class: 'c'}, 'text', child) builds an element. Attributes starting with
// "on" become event listeners; null and false attributes are left out.
export function h(tag, attrs = {}, ...children) {
  const svg = ['svg', 'path', 'line', 'text', 'title', 'g', 'circle', 'polyline'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, ...children);
  return el;
}

export function append(el, ...children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// Minor units as a decimal amount (two decimals; the ledger stores integers).
export function money(minor, currency) {
  if (minor === null || minor === undefined) return '—';
  const sign = minor < 0 ? '-' : '';
  const abs = Math.abs(minor);
  const text = `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
  return currency ? `${text} ${currency}` : text;
}

export function when(iso) {
  if (!iso) return '—';
  return iso.replace('T', ' ').replace(/(\.\d{3})\d*/, '$1').replace('Z', ' UTC');
}

// The end of an id (v7 ids made in the same millisecond share their beginning).
export function short(id) {
  return id ? `…${String(id).slice(-8)}` : '—';
}

// A definition list from [term, value] pairs (values may be nodes).
export function facts(pairs, label) {
  return h('dl', { class: 'facts', 'aria-label': label },
    pairs.filter(Boolean).flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value ?? '—')]));
}

// A table with a caption, column headers and rows of cells.
export function table(caption, headers, rows) {
  return h('table', {},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, headers.map((name) => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c) => h('td', {}, c ?? '—'))))));
}

// A labelled form control: <div><label for=id>text</label><input id=id ...></div>.
export function field(id, label, attrs = {}, tag = 'input') {
  const control = h(tag, { id, name: id, ...attrs });
  return { control, node: h('div', { class: 'field' }, h('label', { for: id }, label), control) };
}

export function link(href, text, attrs = {}) {
  return h('a', { href, ...attrs }, text);
}
