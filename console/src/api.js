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

/**
 * Whether a job pushes results over /ws: `running`, or `remote` (the API-only `streampulse serve`
 * follows the workers' output topics).
 */
export function isLive(state) {
  return state === 'running' || state === 'remote';
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
 * A WebSocket that reconnects (after 1, 2, 4 … 15 s) while the job runs. `onMessage` gets parsed
 * messages, `onState` a short state: 'open', 'reconnecting', or why it gave up for good (the job
 * stopped, the subscription was refused, the token is not accepted). `params.job` is required.
 */
export function liveSocket(params, { onMessage, onState, onOpen }) {
  let socket = null;
  let closed = false;
  let delay = 1000;
  let timer = null;
  let steady = null;
  const giveUp = (why) => {
    closed = true;
    clearTimeout(timer);
    socket?.close();
    onState?.(why);
  };
  // A socket that closes before it opened: ask the API why (a 401, a 404, a stopped job), and
  // stop retrying when retrying cannot help.
  const diagnose = async () => {
    try {
      const status = await api(`/jobs/${encodeURIComponent(params.job)}`);
      if (!isLive(status.state)) return `job ${status.state}: showing stored results only`;
      return null;
    } catch (e) {
      return e.status === 0 ? null : e.message;
    }
  };
  const connect = () => {
    let opened = false;
    socket = new WebSocket(wsUrl(params));
    socket.onopen = () => {
      opened = true;
      onState?.('open');
      onOpen?.();
      // Back to a short delay only once a connection held: a server that accepts and closes
      // at once (full: code 1013) is not hammered every second.
      steady = setTimeout(() => { delay = 1000; }, 10000);
    };
    socket.onmessage = (e) => {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      onMessage(msg);
      if (msg.type === 'stopped') giveUp('job stopped: showing stored results only');
    };
    socket.onclose = async (e) => {
      clearTimeout(steady);
      if (closed) return;
      // 1008: the subscription is over a limit; 1009: a message too large. Retrying repeats it.
      if (e.code === 1008 || e.code === 1009) {
        giveUp(`closed: ${e.reason || 'refused'}`);
        return;
      }
      if (!opened) {
        const why = await diagnose();
        if (closed) return;
        if (why) {
          giveUp(why);
          return;
        }
      }
      onState?.(e.reason ? `reconnecting (${e.reason})` : 'reconnecting');
      timer = setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    };
  };
  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      clearTimeout(steady);
      socket?.close();
    },
  };
}
