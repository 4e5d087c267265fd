// The live view: charts of one window's results for the metrics a glob (and tag filters) pick
// (the field suggests ids from the metric catalog),
// loaded from GET /metrics on open and kept current over the WebSocket, with the alerts, the
// revisions and the late events of each metric drawn on its chart.
//
// At most MAX_CHARTS charts (the first metrics in id order); each keeps its last MAX_POINTS
// windows. Updates are coalesced to one redraw per animation frame per chart.

import { api, ApiError, isLive, liveSocket, query } from './api.js';
import { makeChart, columns, legendItems } from './chart.js';
import { h, fill, fmtNum, fmtTime, globMatch, parseTags, setStatus, statusLine } from './dom.js';

export const MAX_CHARTS = 50;
const MAX_POINTS = 1000;
const RANGES = { '15m': 15 * 60e3, '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3 };
const SETTINGS = 'streampulse.live';
const PAGE = 10000;
const SUGGESTIONS = 50;

export function liveView(ctx) {
  const windows = ctx.jobStatus?.windows ?? [];
  let saved = {};
  try {
    saved = JSON.parse(sessionStorage.getItem(SETTINGS) || '{}');
  } catch {
    saved = {};
  }
  const settings = {
    pattern: saved.pattern || '*',
    window: windows.includes(saved.window) ? saved.window : windows[0] || '',
    tags: saved.tags || '',
    range: RANGES[saved.range] ? saved.range : '15m',
  };

  const metricInput = h('input', { id: 'live-metrics', name: 'metrics', value: settings.pattern, list: 'metric-ids', autocomplete: 'off', spellcheck: 'false', required: true });
  const datalist = h('datalist', { id: 'metric-ids' });
  const windowSelect = h('select', { id: 'live-window', name: 'window' },
    windows.map((w) => h('option', { value: w, selected: w === settings.window }, w)));
  const tagsInput = h('input', { id: 'live-tags', name: 'tags', value: settings.tags, placeholder: 'host:web-1 dc:eu', autocomplete: 'off', spellcheck: 'false' });
  const rangeSelect = h('select', { id: 'live-range', name: 'range' },
    Object.keys(RANGES).map((r) => h('option', { value: r, selected: r === settings.range }, `last ${r}`)));
  const form = h('form', { class: 'controls', onsubmit: (e) => { e.preventDefault(); apply(); } },
    field('Metrics (id or glob)', metricInput), datalist,
    field('Window', windowSelect),
    field('Tags', tagsInput),
    field('History', rangeSelect),
    h('button', { type: 'submit' }, 'Show'));
  const status = statusLine();
  const legend = h('ul', { class: 'legend', 'aria-label': 'Chart key' });
  const grid = h('div', { class: 'charts' });
  const el = h('section', { class: 'view live', 'aria-labelledby': 'live-title' },
    h('h1', { id: 'live-title' }, 'Live'), form, h('div', { class: 'bar' }, status, legend), grid);

  /** metric_id → { id, rows: Map(window_start → row), alerts: Map, late: [], el, box, chart } */
  const series = new Map();
  let hidden = 0;
  let socket = null;
  let abort = null;
  let frame = 0;
  let generation = 0;
  let connectedOnce = false;
  let tagFilter = [];
  const dirty = new Set();
  const resize = new ResizeObserver(() => {
    for (const s of series.values()) s.chart?.setSize({ width: Math.max(s.box.clientWidth, 200), height: s.chart.height });
  });
  resize.observe(grid);

  function field(label, input) {
    return h('label', { class: 'field' }, h('span', {}, label), input);
  }

  function emptyState() {
    if (!windows.length) {
      return h('div', { class: 'empty' }, h('p', {}, 'This job has no windows, so it computes no results to chart.'));
    }
    return h('div', { class: 'empty' },
      h('p', {}, `No window results yet for '${settings.pattern}' in ${settings.window} (last ${settings.range}).`),
      h('p', {}, 'Send events, e.g. ', h('code', {}, 'streampulse produce --rate 1000'), ' or ', h('code', {}, 'POST /events'),
        '; a point appears when a window closes (the watermark passes its end).'));
  }

  /** The chart of `id`, made if there is room for one more; null (counted) past MAX_CHARTS. */
  function chartFor(id) {
    const s = series.get(id);
    if (s) return s;
    if (series.size >= MAX_CHARTS) {
      hidden += 1;
      return null;
    }
    return addSeries(id);
  }

  function addSeries(id) {
    const s = { id, rows: new Map(), alerts: new Map(), late: [], chart: null };
    s.box = h('div', { class: 'chart-box' });
    s.value = h('span', { class: 'chart-value' }, '\u00a0');
    s.el = h('figure', { class: 'chart', 'data-metric': id, 'data-points': '0' },
      h('figcaption', {}, h('a', { href: `#/query/${encodeURIComponent(id)}`, title: `Query ${id}` }, id), s.value),
      s.box);
    series.set(id, s);
    return s;
  }

  // Suggestions for the metric field from the metric catalog (GET /catalog), as the user types:
  // the ids under what was typed up to its first wildcard, with their tags as labels.
  let suggestTimer = 0;
  let suggestAbort = null;
  async function suggest() {
    const prefix = metricInput.value.trim().split(/[*?]/)[0];
    suggestAbort?.abort();
    suggestAbort = new AbortController();
    try {
      const page = await api('/catalog' + query({ job: ctx.job, prefix, limit: SUGGESTIONS }), { signal: suggestAbort.signal });
      fill(datalist, page.metrics.map((m) => h('option', {
        value: m.metric_id,
        label: Object.entries(m.tags).map(([k, v]) => `${k}:${v}`).join(' ') || m.metric_id,
      })));
    } catch {
      // Suggestions are a convenience: the field works without them.
    }
  }
  metricInput.addEventListener('input', () => {
    clearTimeout(suggestTimer);
    suggestTimer = setTimeout(suggest, 150);
  });

  function addRow(s, row) {
    const old = s.rows.get(row.window_start);
    if (old && old.revision > row.revision) return;
    s.rows.set(row.window_start, row);
    s.newest = Math.max(s.newest ?? row.window_end, row.window_end);
    dirty.add(s);
  }

  /** Keeps the chosen history, back from the newest window (event time), at most MAX_POINTS. */
  function prune(s) {
    const from = s.newest - RANGES[settings.range];
    const starts = [...s.rows.keys()].sort((a, b) => b - a);
    starts.forEach((start, i) => {
      if (i >= MAX_POINTS || start < from) s.rows.delete(start);
    });
    s.late = s.late.filter((ts) => ts >= from);
  }

  function marks(s) {
    const revisions = [];
    for (const r of s.rows.values()) if (r.revision > 0) revisions.push(r.window_end);
    return { alerts: [...s.alerts.values()], revisions, late: s.late };
  }

  function draw() {
    frame = 0;
    if (series.size && grid.querySelector('.empty')) fill(grid);
    const ordered = [...series.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    for (const s of ordered) {
      if (!s.el.isConnected) {
        // Keep id order: insert before the first chart whose id sorts after this one.
        const after = ordered.find((o) => o.el.isConnected && o.id > s.id);
        grid.insertBefore(s.el, after ? after.el : null);
      }
    }
    for (const s of dirty) {
      prune(s);
      const rows = [...s.rows.values()];
      if (!s.chart) s.chart = makeChart(s.box, rows, () => marks(s));
      else s.chart.setData(columns(rows));
      s.el.dataset.points = String(rows.length);
      const last = rows.reduce((a, b) => (!a || b.window_start > a.window_start ? b : a), null);
      if (last) {
        s.value.textContent = `mean ${fmtNum(last.mean)} · ${fmtTime(last.window_end)}`;
        s.el.setAttribute('aria-label', `${s.id}: ${rows.length} windows, latest mean ${fmtNum(last.mean)} at ${fmtTime(last.window_end)}`);
      }
      const firing = [...s.alerts.values()].some((a) => a.state === 'firing');
      s.el.classList.toggle('firing', firing);
    }
    dirty.clear();
    updateStatus();
  }

  function schedule() {
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function updateStatus(extra) {
    if (extra) notice = extra;
    const parts = [`${series.size} metric${series.size === 1 ? '' : 's'}`];
    if (hidden) parts.push(`more match than the ${MAX_CHARTS} shown: narrow the glob or add tags`);
    parts.push(socketState);
    if (notice) parts.push(notice);
    setStatus(status, parts.join(' · '), hidden ? 'warn' : '');
  }
  let socketState = 'connecting';
  /** The last thing the feed said (skipped updates, a refused subscription change). */
  let notice = '';

  async function loadHistory(gen) {
    abort?.abort();
    abort = new AbortController();
    const { signal } = abort;
    const now = Date.now();
    const start = now - RANGES[settings.range];
    const end = now + 5 * 60e3;
    const base = { job: ctx.job, start, end, metric_id: settings.pattern, window: settings.window, tag: tagFilter.map(([k, v]) => `${k}:${v}`), limit: PAGE };
    let cursor;
    let metrics = new Set();
    for (;;) {
      const page = await api('/metrics' + query({ ...base, cursor }), { signal });
      if (gen !== generation) return;
      for (const row of page.results) {
        metrics.add(row.metric_id);
        const s = chartFor(row.metric_id);
        if (s) addRow(s, row);
      }
      if (!page.truncated || !page.next_cursor || metrics.size > MAX_CHARTS) break;
      cursor = page.next_cursor;
    }
    // Alerts and late events of the shown metrics, for the markers.
    const [alerts, late] = await Promise.all([
      api('/alerts' + query({ job: ctx.job, start, end, limit: 1000 }), { signal }).catch(() => ({ alerts: [] })),
      api('/events/late' + query({ job: ctx.job, start, end, limit: 5000 }), { signal }).catch(() => ({ late_events: [] })),
    ]);
    if (gen !== generation) return;
    for (const a of alerts.alerts) {
      const s = series.get(a.metric_id);
      if (s) {
        s.alerts.set(a.id, a);
        dirty.add(s);
      }
    }
    for (const s of series.values()) s.late = [];
    for (const e of late.late_events) {
      const s = series.get(e.metric_id);
      if (s && (!e.window || e.window === settings.window)) {
        s.late.push(e.ts);
        dirty.add(s);
      }
    }
  }

  function onMessage(msg) {
    if (msg.type === 'result') {
      if (msg.partial || msg.window !== settings.window) return;
      const s = series.get(msg.metric_id);
      if (s) {
        addRow(s, msg);
        schedule();
      } else if (globMatch(settings.pattern, msg.metric_id)) {
        follow(msg);
      }
    } else if (msg.type === 'alert') {
      const s = series.get(msg.metric_id);
      if (s) {
        s.alerts.set(msg.id, msg);
        dirty.add(s);
        schedule();
      }
    } else if (msg.type === 'lagged') {
      updateStatus(`skipped ${msg.skipped} updates (this tab read too slowly)`);
    } else if (msg.type === 'error') {
      updateStatus(msg.detail);
    }
  }

  /**
   * A result of a metric not charted yet: chart it if it passes the tag filter. Rows carry no
   * tags, so the catalog says (asked once per metric; results arriving meanwhile wait).
   */
  const tagged = new Map();
  async function follow(row) {
    let verdict = tagFilter.length ? tagged.get(row.metric_id) : true;
    if (Array.isArray(verdict)) {
      verdict.push(row);
      return;
    }
    if (verdict === undefined) {
      if (tagged.size >= 10000) tagged.clear();
      const waiting = [row];
      tagged.set(row.metric_id, waiting);
      const gen = generation;
      try {
        const page = await api('/catalog' + query({
          job: ctx.job, metric_id: row.metric_id, tag: tagFilter.map(([k, v]) => `${k}:${v}`), limit: 1,
        }));
        verdict = page.metrics.length > 0;
      } catch {
        verdict = false;
      }
      if (gen !== generation) return;
      tagged.set(row.metric_id, verdict);
      if (verdict) for (const r of waiting.slice(1)) follow(r);
    }
    const s = verdict && chartFor(row.metric_id);
    if (!s) return;
    addRow(s, row);
    schedule();
  }

  async function apply() {
    // A bad tag filter changes nothing: the charts shown stay live.
    try {
      tagFilter = parseTags(tagsInput.value);
    } catch (e) {
      setStatus(status, e.message, 'error');
      tagsInput.setAttribute('aria-invalid', 'true');
      return;
    }
    tagsInput.removeAttribute('aria-invalid');
    generation += 1;
    const gen = generation;
    settings.pattern = metricInput.value.trim() || '*';
    settings.window = windowSelect.value;
    settings.tags = tagsInput.value;
    settings.range = rangeSelect.value;
    notice = '';
    sessionStorage.setItem(SETTINGS, JSON.stringify(settings));
    socket?.close();
    for (const s of series.values()) s.chart?.destroy();
    series.clear();
    dirty.clear();
    tagged.clear();
    hidden = 0;
    connectedOnce = false;
    fill(grid, emptyState());
    fill(legend, legendItems(true).map(([label, kind]) => h('li', { class: `key-${kind}` }, label)));
    if (!ctx.job || !windows.length) {
      setStatus(status, ctx.job ? '' : `no job to show: ${ctx.jobsError || 'the platform lists none'}`, ctx.job ? '' : 'error');
      return;
    }
    setStatus(status, 'loading…');
    try {
      await loadHistory(gen);
    } catch (e) {
      if (e.name === 'AbortError') return;
      const message = e instanceof ApiError ? e.message : String(e);
      setStatus(status, message, 'error');
      fill(grid, h('div', { class: 'empty' }, h('p', { class: 'error' }, `The results could not be loaded: ${message}`)));
      return;
    }
    if (gen !== generation) return;
    schedule();
    if (!isLive(ctx.jobStatus?.state)) {
      socketState = `job ${ctx.jobStatus?.state ?? 'unknown'}: showing stored results only`;
      updateStatus();
      return;
    }
    socket = liveSocket(
      { job: ctx.job, metrics: settings.pattern, windows: settings.window, alerts: 'true' },
      {
        onMessage,
        onState: (s) => {
          socketState = s === 'open' ? 'live' : s;
          updateStatus();
        },
        onOpen: () => {
          // After a reconnect, fetch what was pushed while the socket was down.
          if (connectedOnce) loadHistory(gen).then(schedule).catch(() => {});
          connectedOnce = true;
        },
      },
    );
  }

  apply();
  if (ctx.job) suggest();
  return {
    name: 'live',
    el,
    destroy() {
      generation += 1;
      abort?.abort();
      suggestAbort?.abort();
      clearTimeout(suggestTimer);
      socket?.close();
      resize.disconnect();
      if (frame) cancelAnimationFrame(frame);
      for (const s of series.values()) s.chart?.destroy();
    },
  };
}
