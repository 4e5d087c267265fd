// The query view: the range query of GET /metrics as a form, its answer as a table, the same
// query as a curl command, and every page of it as a CSV download (the columns of
// `streampulse replay`'s CSV output).

import { allPages, api, ApiError, query, token } from './api.js';
import { h, fill, fmtNum, fmtTime, parseTags, setStatus, statusLine } from './dom.js';

const SHOWN = 500;
const CSV_MAX = 100000;
const BASE = ['metric_id', 'window', 'window_start', 'window_end', 'count', 'sum', 'min', 'max', 'mean'];

/** `YYYY-MM-DDTHH:MM` of a Date in local time, for datetime-local inputs. */
function localInput(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export function queryView(ctx) {
  const windows = ctx.jobStatus?.windows ?? [];
  const now = new Date();
  let linked = '';
  try {
    linked = ctx.arg ? decodeURIComponent(ctx.arg) : '';
  } catch {
    linked = ctx.arg;
  }
  let abort = null;
  const metric = h('input', { id: 'q-metric', name: 'metric_id', value: linked, placeholder: 'cpu.* (empty: every metric)', autocomplete: 'off', spellcheck: 'false' });
  const windowSelect = h('select', { id: 'q-window', name: 'window' }, h('option', { value: '' }, 'every window'),
    windows.map((w) => h('option', { value: w }, w)));
  const tags = h('input', { id: 'q-tags', name: 'tags', placeholder: 'host:web-1', autocomplete: 'off', spellcheck: 'false' });
  const start = h('input', { id: 'q-start', name: 'start', type: 'datetime-local', value: localInput(new Date(now - 15 * 60e3)), required: true });
  const end = h('input', { id: 'q-end', name: 'end', type: 'datetime-local', value: localInput(new Date(now.getTime() + 60e3)), required: true });
  const limit = h('input', { id: 'q-limit', name: 'limit', type: 'number', min: 1, max: 10000, value: 1000, required: true });
  const status = statusLine();
  const curl = h('pre', { class: 'curl', 'aria-label': 'The same query with curl' });
  const download = h('button', { type: 'button', onclick: () => csv() }, 'Download CSV');
  const table = h('div', { class: 'table-wrap' });
  const form = h('form', { class: 'controls', onsubmit: (e) => { e.preventDefault(); run(); } },
    field('Metric (id or glob)', metric), field('Window', windowSelect), field('Tags', tags),
    field('Start (local time)', start), field('End', end), field('Rows per page', limit),
    h('button', { type: 'submit' }, 'Run'), download);
  const el = h('section', { class: 'view query', 'aria-labelledby': 'query-title' },
    h('h1', { id: 'query-title' }, 'Query'), form, status, curl, table);

  function field(label, input) {
    return h('label', { class: 'field' }, h('span', {}, label), input);
  }

  /** The query parameters of the form; throws with a message on a bad value. */
  function params() {
    const s = new Date(start.value);
    const e = new Date(end.value);
    if (Number.isNaN(s.getTime()) || Number.isNaN(e.getTime())) throw new Error('start and end must be dates');
    return {
      job: ctx.job,
      start: s.toISOString(),
      end: e.toISOString(),
      metric_id: metric.value.trim(),
      window: windowSelect.value,
      tag: parseTags(tags.value).map(([k, v]) => `${k}:${v}`),
      limit: limit.value,
    };
  }

  function showCurl(p) {
    const url = new URL('/metrics' + query(p), window.location.href).toString();
    const auth = token() ? ' -H "Authorization: Bearer $STREAMPULSE_TOKEN"' : '';
    curl.textContent = `curl${auth} '${url.replace(/'/g, "'\\''")}'`;
  }

  /** The form's query, shown as curl; null after saying what is wrong with the form. Cancels
   * what an earlier click still fetches. */
  function prepare(doing) {
    abort?.abort();
    abort = new AbortController();
    let p;
    try {
      p = params();
    } catch (e) {
      setStatus(status, e.message, 'error');
      return null;
    }
    showCurl(p);
    setStatus(status, doing);
    return p;
  }

  async function run() {
    const p = prepare('running…');
    if (!p) return;
    try {
      const page = await api('/metrics' + query(p), { signal: abort.signal });
      render(page.results);
      setStatus(status, `${page.count} row${page.count === 1 ? '' : 's'}${page.truncated ? ' in this page; more follow (Download CSV takes every page)' : ''}`);
    } catch (e) {
      if (e.name !== 'AbortError') setStatus(status, e instanceof ApiError ? e.message : String(e), 'error');
    }
  }

  function extraColumns(rows) {
    const extra = new Set();
    for (const r of rows) for (const k of Object.keys(r)) if (!BASE.includes(k) && k !== 'revision' && k !== 'type') extra.add(k);
    return [...extra].sort();
  }

  function render(rows) {
    if (!rows.length) {
      fill(table, h('p', { class: 'empty' }, 'No window results in this range. Widen it, or check the metric and window.'));
      return;
    }
    const cols = [...BASE, ...extraColumns(rows), 'revision'];
    const time = new Set(['window_start', 'window_end']);
    fill(table, h('table', { class: 'results' },
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.slice(0, SHOWN).map((r) => h('tr', {}, cols.map((c) => h('td', { class: typeof r[c] === 'number' && !time.has(c) ? 'num' : '' },
        time.has(c) ? fmtTime(r[c]) : typeof r[c] === 'number' ? fmtNum(r[c]) : r[c] ?? '')))))));
  }

  async function csv() {
    const p = prepare('fetching every page…');
    if (!p) return;
    try {
      const { rows, truncated } = await allPages('/metrics', { ...p, limit: 10000 }, 'results', { maxRows: CSV_MAX, signal: abort.signal });
      const cols = [...BASE, ...extraColumns(rows), 'revision'];
      const cell = (v) => {
        if (v === undefined || v === null) return '';
        let text = String(v);
        // A text cell starting like a formula (a metric id is user input) is not run by a
        // spreadsheet; numbers are left as they are.
        if (typeof v === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
        return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
      };
      const text = [cols.join(','), ...rows.map((r) => cols.map((c) => cell(r[c])).join(','))].join('\n') + '\n';
      const a = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'text/csv' })), download: `streampulse-${ctx.job ?? 'results'}.csv` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
      setStatus(status, `${rows.length} rows downloaded${truncated ? ` (the first ${CSV_MAX}: narrow the query for the rest)` : ''}`);
    } catch (e) {
      if (e.name !== 'AbortError') setStatus(status, e instanceof ApiError ? e.message : String(e), 'error');
    }
  }

  if (ctx.arg) run();
  return { name: 'query', el, destroy() { abort?.abort(); } };
}
