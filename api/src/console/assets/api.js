// The console's client of /v1: the bearer token (sessionStorage only: gone with the tab), calls
// with it, problem+json errors, and what the token's role may see (for the menus only: the API
// enforces the role matrix on every call).

const KEY = 'logbook.console.token';

export function token() {
  return sessionStorage.getItem(KEY);
}

export function signIn(value) {
  const trimmed = value.trim().replace(/^Bearer\s+/i, '');
  const parsed = decode(trimmed);
  if (!parsed) throw new Error('This is not a JWT (three base64url parts with sub and role claims).');
  sessionStorage.setItem(KEY, trimmed);
  return parsed;
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

// The claims of the stored token, unverified (the server verifies them on each call).
export function claims() {
  const t = token();
  return t ? decode(t) : null;
}

function decode(jwt) {
  const parts = jwt.split('.');
  if (parts.length !== 3) return null;
  try {
    const json = atob(parts[1].replace(/-/g, '+').replace(/_/g, '/'));
    const payload = JSON.parse(json);
    if (typeof payload.sub !== 'string' || typeof payload.role !== 'string') return null;
    return payload;
  } catch {
    return null;
  }
}

// What each role may do in the console, as the README's role matrix says.
const MAY = {
  listAccounts: ['customer', 'support', 'auditor', 'service', 'admin'],
  readBalances: ['customer', 'auditor', 'service', 'admin'],
  readTransfers: ['customer', 'auditor', 'service', 'admin'],
  audit: ['auditor', 'admin'],
  admin: ['admin'],
};

export function may(what) {
  const c = claims();
  return Boolean(c && MAY[what].includes(c.role));
}

// An error answer of the API, with its problem+json body when there is one.
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
  });
  const type = response.headers.get('content-type') || '';
  const parsed = type.includes('json') ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, typeof parsed === 'object' ? parsed : null);
  return parsed;
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body ?? {});

// `path` with the query parameters that have a value.
export function query(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
