// The REST client of the dashboard: GETs ride on the session cookie (or
// public reads); requests that change state send the token kept in
// sessionStorage as a bearer header, which a cross-site page cannot do.

export const TOKEN_KEY = 'hyperspace.token';

export class APIError extends Error {
  constructor(status, detail) {
    super((detail && detail.message) || 'HTTP ' + status);
    this.status = status;
    this.detail = detail || {};
  }
}

export async function api(path, opts = {}) {
  const method = opts.method || 'GET';
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') {
    const tok = sessionStorage.getItem(TOKEN_KEY);
    if (tok) headers.Authorization = 'Bearer ' + tok;
  }
  let body;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  const r = await fetch(path.startsWith('/') ? path : '/api/v1/' + path, { method, headers, body, credentials: 'same-origin' });
  let data = null;
  const text = await r.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!r.ok) throw new APIError(r.status, data && data.error);
  return data;
}
