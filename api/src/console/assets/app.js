// The console's shell: sign-in, the menu the role may use, and the pages behind hash routes
// (#/accounts, #/account/<id>, #/history/<id>, #/transfer/<id>, #/operations, #/security).

import { h, clear, append } from './dom.js';
import { claims, may, signIn, signOut } from './api.js';
import * as accounts from './pages/accounts.js';
import * as account from './pages/account.js';
import * as history from './pages/history.js';
import * as transfer from './pages/transfer.js';
import * as operations from './pages/operations.js';
import * as security from './pages/security.js';

const PAGES = [
  { path: 'accounts', title: 'Accounts', page: accounts, menu: 'listAccounts' },
  { path: 'account', page: account, needs: 'listAccounts' },
  { path: 'history', page: history, needs: 'audit' },
  { path: 'transfer', title: 'Transfers', page: transfer, menu: 'readTransfers' },
  { path: 'operations', title: 'Operations', page: operations, menu: 'admin' },
  { path: 'security', title: 'Security trail', page: security, menu: 'audit' },
];

let leave = null;

function route() {
  const [path, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  return { path: path || '', arg: rest.join('/') };
}

function render() {
  if (leave) leave();
  leave = null;
  const main = clear(document.getElementById('main'));
  const who = clear(document.getElementById('who'));
  const nav = clear(document.getElementById('nav'));
  const me = claims();
  if (!me) {
    renderSignIn(main);
    return;
  }
  append(who, `${me.sub} · ${me.role} `,
    h('button', { type: 'button', class: 'link', onclick: () => { signOut(); location.hash = '#/'; render(); } }, 'Sign out'));
  const { path, arg } = route();
  const menu = PAGES.filter((p) => p.menu && may(p.menu));
  nav.append(h('ul', {}, menu.map((p) => h('li', {},
    h('a', { href: `#/${p.path}`, 'aria-current': p.path === path ? 'page' : null }, p.title)))));
  const found = PAGES.find((p) => p.path === path);
  if (!found) {
    if (menu.length === 0) {
      main.append(h('h1', { tabindex: -1 }, 'Nothing to show'),
        h('p', {}, `The ${me.role} role reads no accounts, history or operations. `,
          'Analysts export events with GET /v1/events (NDJSON).'));
    } else {
      location.replace(`#/${menu[0].path}`);
    }
    return;
  }
  const allowed = may(found.menu || found.needs);
  if (!allowed) {
    main.append(h('h1', { tabindex: -1 }, 'Not available'),
      h('p', {}, `The ${me.role} role may not see this page.`));
    return;
  }
  leave = found.page.render(main, arg) || null;
}

function renderSignIn(main) {
  const error = h('p', { id: 'signin-error', class: 'error', role: 'alert' });
  const input = h('input', {
    id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true,
    'aria-describedby': 'token-help signin-error', spellcheck: 'false',
  });
  const form = h('form', { class: 'signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title', tabindex: -1 }, 'Sign in'),
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'Bearer token'), input),
    h('p', { id: 'token-help', class: 'help' },
      'A token from `logbook token --role <role> --sub <sub>`. It stays in this browser tab only (sessionStorage) and is sent to this server\u2019s /v1 API, nowhere else.'),
    h('button', { type: 'submit' }, 'Sign in'),
    error);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    try {
      signIn(input.value);
    } catch (e) {
      error.textContent = e.message;
      return;
    }
    input.value = '';
    render();
    document.getElementById('main').focus();
  });
  main.append(form);
  input.focus();
}

window.addEventListener('hashchange', () => {
  render();
  const heading = document.querySelector('main h1');
  if (heading) heading.focus();
});
document.addEventListener('DOMContentLoaded', render);
