// What the pages share: error display and a busy marker while a call runs.

import { h } from '../dom.js';

// A problem+json error (or any failure) as an alert.
export function problem(error) {
  const status = error.status ? `${error.status} ` : '';
  const title = error.problem?.title || 'Request failed';
  const detail = error.problem?.detail || error.message;
  const fields = (error.problem?.errors || []).map((f) => h('li', {}, `${f.pointer}: ${f.detail || f.message || ''}`));
  return h('div', { class: 'error', role: 'alert' }, h('strong', {}, `${status}${title}`), ' ', detail,
    fields.length ? h('ul', {}, fields) : null);
}

// Runs `work`, marking `region` busy meanwhile and showing a failure in it.
export async function busy(region, work) {
  region.setAttribute('aria-busy', 'true');
  try {
    await work();
  } catch (error) {
    region.replaceChildren(problem(error));
  } finally {
    region.removeAttribute('aria-busy');
  }
}

// Says `text` to screen readers (the page's polite live region).
export function announce(text) {
  const status = document.getElementById('status');
  if (status) status.textContent = text;
}
