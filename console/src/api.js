// The console's client of the HTTP API: same origin, the bearer token (if any) from the tab's
// session storage, errors as ApiError carrying the problem document's `detail`. A 401 asks the
// shell for a token (an `unauthorized` event on window).

const TOKEN_KEY = 'streampulse.token';

export class ApiError extends Error {
  constructor(status, detail, problem) {
    super(detail);
    this.status = status;
    this.problem = problem;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** A query string from an object; arrays repeat the key, empty values are left out. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== '') q.append(key, String(v));
    }
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { accept: 'application/json' };
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, `the platform does not answer (${e.message}); is streampulse running?`);
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const detail = (json && json.detail) || text || res.statusText;
    const error = new ApiError(res.status, detail, json);
    if (res.status === 401) window.dispatchEvent(new CustomEvent('unauthorized', { detail }));
    throw error;
  }
  return json;
}

/** Every page of a paginated query (following `next_cursor`), up to `maxRows` rows of `field`. */
export async function allPages(path, params, field, { maxRows = 100000, signal } = {}) {
  const rows = [];
  let cursor;
  for (;;) {
    const page = await api(path + query({ ...params, cursor }), { signal });
    rows.push(...page[field]);
    if (!page.truncated || !page.next_cursor || rows.length >= maxRows) {
      return { rows, truncated: Boolean(page.truncated) };
    }
    cursor = page.next_cursor;
  }
}

/** The WebSocket URL of `/ws` with these subscription parameters (and the token, if any). */
export function wsUrl(params) {
  const url = new URL('/ws' + query(params), window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const t = token();
  if (t) url.searchParams.set('access_token', t);
  return url.toString();
}

/**
 * A WebSocket that reconnects (after 1, 2, 4 … 15 s) until closed; `onMessage` gets parsed
 * messages, `onState` 'open' | 'closed' | 'error: …'.
 */
export function liveSocket(params, { onMessage, onState, onOpen }) {
  let socket = null;
  let closed = false;
  let delay = 1000;
  let timer = null;
  const connect = () => {
    socket = new WebSocket(wsUrl(params));
    socket.onopen = () => {
      delay = 1000;
      onState?.('open');
      onOpen?.();
    };
    socket.onmessage = (e) => {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      onMessage(msg);
    };
    socket.onclose = (e) => {
      if (closed) return;
      onState?.(e.reason ? `closed: ${e.reason}` : 'reconnecting');
      timer = setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    };
  };
  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      socket?.close();
    },
    send(value) {
      if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(value));
    },
  };
}
