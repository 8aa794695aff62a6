// Fetch helpers. Every failure becomes an ApiError carrying the server's {error, message}, so the
// views can always show a sentence instead of a blank page.
export class ApiError extends Error {
  constructor(status, error, message) {
    super(message || error);
    this.status = status;
    this.error = error;
  }
  // "forbidden: <message>" — the one line the banner and the dialogs show.
  get text() { return this.message && this.message !== this.error ? `${this.error}: ${this.message}` : this.error; }
}

// The per-process token the server writes into index.html; POSTs without it are refused (CSRF).
const token = () => document.querySelector('meta[name="fluxpy-token"]')?.content || '';

async function request(method, path, body) {
  const init = { method, credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.headers['X-Fluxpy-Token'] = token();
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'unreachable', `cannot reach the fluxpy server (${e.message})`);
  }
  let data = null;
  try { data = await res.json(); } catch { /* not JSON: handled below */ }
  if (!res.ok || data === null) {
    const error = data?.error || (res.ok ? 'bad response' : `HTTP ${res.status}`);
    throw new ApiError(res.status, error, data?.message || res.statusText);
  }
  return data;
}

export const getJSON = path => request('GET', path);
export const postJSON = (path, body) => request('POST', path, body);
