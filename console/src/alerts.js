// The alerts view: every alert episode of a period in a table (firing first, then critical
// first, newest first), kept current over the WebSocket, filtered by state, severity and tags;
// #/alerts/ID opens an alert's detail with its metric's series around the episode.

import { api, ApiError, isLive, liveSocket, query } from './api.js';
import { makeChart } from './chart.js';
import { h, fill, fmtDuration, fmtNum, fmtTime, parseTags, setStatus, statusLine } from './dom.js';

const PERIODS = { '1h': 3600e3, '24h': 24 * 3600e3, '7d': 7 * 24 * 3600e3 };
const CONTEXT = 10 * 60e3;

export function alertsView(ctx) {
  const stateSelect = h('select', { id: 'alerts-state', name: 'state' },
    h('option', { value: '' }, 'any'), h('option', { value: 'firing' }, 'firing'), h('option', { value: 'resolved' }, 'resolved'));
  const severitySelect = h('select', { id: 'alerts-severity', name: 'severity' },
    h('option', { value: '' }, 'any'), h('option', { value: 'warning' }, 'warning'), h('option', { value: 'critical' }, 'critical'));
  const tagsInput = h('input', { id: 'alerts-tags', name: 'tags', placeholder: 'host:web-1', autocomplete: 'off', spellcheck: 'false' });
  const periodSelect = h('select', { id: 'alerts-period', name: 'period' },
    Object.keys(PERIODS).map((p) => h('option', { value: p, selected: p === '24h' }, `last ${p}`)));
  const form = h('form', { class: 'controls', onsubmit: (e) => { e.preventDefault(); load(); } },
    field('State', stateSelect), field('Severity', severitySelect), field('Tags', tagsInput), field('Period', periodSelect),
    h('button', { type: 'submit' }, 'Filter'));
  const status = statusLine();
  const tbody = h('tbody');
  const table = h('table', { class: 'alerts-table' },
    h('caption', { class: 'sr-only' }, 'Alerts, firing first'),
    h('thead', {}, h('tr', {}, ['State', 'Severity', 'Metric', 'Detector', 'Series', 'Observed', 'Expected', 'Score', 'Since', 'Last']
      .map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const detail = h('section', { class: 'detail' });
  const el = h('section', { class: 'view alerts', 'aria-labelledby': 'alerts-title' },
    h('h1', { id: 'alerts-title' }, 'Alerts'), form, status, h('div', { class: 'table-wrap' }, table), detail);

  const alerts = new Map();
  let filters = { state: '', severity: '', tags: [] };
  let socket = null;
  let abort = null;
  let detailChart = null;
  let detailAbort = null;
  let frame = 0;

  /** Keeps the latest transition of an alert (the highest sequence), whatever arrives first. */
  function keep(a) {
    const had = alerts.get(a.id);
    if (!had || (a.sequence ?? 0) >= (had.sequence ?? 0)) alerts.set(a.id, a);
  }

  function field(label, input) {
    return h('label', { class: 'field' }, h('span', {}, label), input);
  }

  function matches(a) {
    if (filters.state && a.state !== filters.state) return false;
    if (filters.severity && a.severity !== filters.severity) return false;
    return filters.tags.every(([k, v]) => a.tags && a.tags[k] === v);
  }

  function order(a, b) {
    const rank = (x) => (x.state === 'firing' ? 0 : 2) + (x.severity === 'critical' ? 0 : 1);
    return rank(a) - rank(b) || b.first_ts - a.first_ts || (a.id < b.id ? -1 : 1);
  }

  function render() {
    frame = 0;
    // Alerts that ended before the period leave the table (and memory); firing ones stay.
    const since = Date.now() - PERIODS[periodSelect.value];
    for (const [id, a] of alerts) {
      if (a.state !== 'firing' && (a.resolved_ts ?? a.last_ts) < since) alerts.delete(id);
    }
    const rows = [...alerts.values()].filter(matches).sort(order);
    if (!rows.length) {
      fill(tbody, h('tr', {}, h('td', { colspan: 10, class: 'empty' },
        'No alerts in this period. Detectors fire on values far from a metric\'s recent ones; ',
        h('code', {}, 'streampulse produce'), ' injects such spikes.')));
      setStatus(status, `no alerts · ${socketState}`);
      return;
    }
    // The table is rebuilt: keyboard focus on a row follows that alert to its new row.
    const focused = document.activeElement?.dataset?.alertId;
    const now = Date.now();
    fill(tbody, rows.map((a) => h('tr', {
      tabindex: 0,
      class: `alert-row ${a.state} ${a.severity}`,
      'data-alert-id': a.id,
      'aria-label': `${a.state} ${a.severity} alert on ${a.metric_id}`,
      onclick: () => { window.location.hash = `#/alerts/${encodeURIComponent(a.id)}`; },
      onkeydown: (e) => { if (e.key === 'Enter') window.location.hash = `#/alerts/${encodeURIComponent(a.id)}`; },
    },
    h('td', {}, h('span', { class: `badge ${a.state}` }, a.state)),
    h('td', {}, h('span', { class: `badge ${a.severity}` }, a.severity)),
    h('td', { class: 'mono' }, a.metric_id),
    h('td', {}, a.detector),
    h('td', {}, a.series),
    h('td', { class: 'num' }, fmtNum(a.observed)),
    h('td', { class: 'num' }, fmtNum(a.expected)),
    h('td', { class: 'num' }, fmtNum(a.score)),
    h('td', { title: fmtTime(a.first_ts) }, `${fmtDuration(now - a.first_ts)} ago`),
    h('td', { title: fmtTime(a.last_ts) }, fmtTime(a.resolved_ts ?? a.last_ts)))));
    if (focused) tbody.querySelector(`tr[data-alert-id="${CSS.escape(focused)}"]`)?.focus({ preventScroll: true });
    const firing = rows.filter((a) => a.state === 'firing').length;
    setStatus(status, `${rows.length} alert${rows.length === 1 ? '' : 's'}, ${firing} firing · ${socketState}`);
  }
  let socketState = 'connecting';

  function schedule() {
    if (!frame) frame = requestAnimationFrame(render);
  }

  async function load() {
    try {
      filters = { state: stateSelect.value, severity: severitySelect.value, tags: parseTags(tagsInput.value) };
      tagsInput.removeAttribute('aria-invalid');
    } catch (e) {
      tagsInput.setAttribute('aria-invalid', 'true');
      setStatus(status, e.message, 'error');
      return;
    }
    abort?.abort();
    abort = new AbortController();
    const now = Date.now();
    setStatus(status, 'loading…');
    try {
      const page = await api('/alerts' + query({
        job: ctx.job,
        start: now - PERIODS[periodSelect.value],
        end: now + 5 * 60e3,
        state: filters.state,
        severity: filters.severity,
        tag: filters.tags.map(([k, v]) => `${k}:${v}`),
        limit: 1000,
      }), { signal: abort.signal });
      // Replace what an earlier filter loaded, but keep a newer transition the WebSocket brought
      // while this page was on its way.
      const pushed = [...alerts.values()];
      alerts.clear();
      for (const a of page.alerts) keep(a);
      for (const a of pushed) if (alerts.has(a.id)) keep(a);
      render();
      if (page.truncated) setStatus(status, `${status.textContent} · the newest 1,000 shown: narrow the filters`, 'warn');
    } catch (e) {
      if (e.name !== 'AbortError') setStatus(status, e instanceof ApiError ? e.message : String(e), 'error');
    }
  }

  async function showDetail(id) {
    // Only the latest detail asked for may write: an earlier answer arriving late is dropped.
    detailAbort?.abort();
    detailAbort = new AbortController();
    const { signal } = detailAbort;
    detailChart?.destroy();
    detailChart = null;
    if (!id) {
      fill(detail);
      return;
    }
    fill(detail, h('p', {}, 'loading…'));
    let a;
    try {
      a = await api(`/alerts/${encodeURIComponent(id)}` + query({ job: ctx.job }), { signal });
    } catch (e) {
      if (e.name !== 'AbortError') fill(detail, h('p', { class: 'error' }, e.message));
      return;
    }
    const windows = ctx.jobStatus?.windows ?? [];
    const window = windows.includes(a.series) ? a.series : windows[0];
    const end = (a.resolved_ts ?? Math.max(a.last_ts, Date.now())) + CONTEXT;
    const range = { job: ctx.job, start: a.first_ts - CONTEXT, end };
    // An alert on the raw series is best seen against the raw events, when the job keeps them
    // (otherwise the window means stand in).
    let raw = null;
    if (a.series === 'raw' && ctx.jobStatus?.keep_raw_events) {
      try {
        const page = await api('/events' + query({ ...range, metric_id: a.metric_id, limit: 10000 }), { signal });
        raw = page.events.map((e) => ({ window_start: e.ts, window_end: e.ts, mean: e.value, min: e.value, max: e.value }));
      } catch (e) {
        if (e.name === 'AbortError') return;
        raw = null;
      }
    }
    const box = h('div', { class: 'chart-box' });
    const facts = [
      ['State', a.state], ['Severity', a.severity], ['Metric', a.metric_id], ['Detector', a.detector],
      ['Series', a.series], ['Observed', fmtNum(a.observed)], ['Expected', fmtNum(a.expected)],
      ['Score', `${fmtNum(a.score)} (peak ${fmtNum(a.peak_score)}, threshold ${fmtNum(a.threshold)})`],
      ['First', fmtTime(a.first_ts)], ['Last', fmtTime(a.last_ts)], ['Resolved', fmtTime(a.resolved_ts)],
      ['Tags', Object.entries(a.tags || {}).map(([k, v]) => `${k}:${v}`).join(' ') || '—'], ['Id', a.id],
    ];
    fill(detail,
      h('h2', { id: 'alert-detail-title', tabindex: '-1' }, `Alert on ${a.metric_id}`),
      h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      raw ? h('p', { class: 'hint' }, `the raw events of ${a.metric_id} from 10 min before the episode to 10 min after it`)
        : window ? h('p', { class: 'hint' }, `${window} windows of ${a.metric_id} from 10 min before the episode to 10 min after it`
        + (a.series === window ? '' : ` (the alert watches the ${a.series} series; the job keeps no raw events)`)) : null,
      box,
      h('p', {}, h('a', { href: '#/alerts' }, 'Back to all alerts')));
    detail.querySelector('h2').focus({ preventScroll: true });
    detail.scrollIntoView({ block: 'nearest' });
    if (raw) {
      detailChart = makeChart(box, raw, () => ({ alerts: [a] }));
      return;
    }
    if (!window) return;
    try {
      const page = await api(`/metrics/${encodeURIComponent(a.metric_id)}` + query({ ...range, window, limit: 10000 }), { signal });
      detailChart = makeChart(box, page.results, () => ({ alerts: [a] }));
    } catch (e) {
      if (e.name !== 'AbortError') box.replaceWith(h('p', { class: 'error' }, e.message));
    }
  }

  load();
  if (!ctx.job) {
    socketState = `no job: ${ctx.jobsError || 'the platform lists none'}`;
  } else if (!isLive(ctx.jobStatus?.state)) {
    socketState = `job ${ctx.jobStatus?.state}: stored alerts only`;
  } else {
    socket = liveSocket({ job: ctx.job, results: 'false', alerts: 'true' }, {
    onMessage: (msg) => {
      if (msg.type !== 'alert') return;
      keep(msg);
      schedule();
    },
    onState: (s) => {
      socketState = s === 'open' ? 'live' : s;
      schedule();
    },
    });
  }
  showDetail(ctx.arg);

  return {
    name: 'alerts',
    el,
    onRoute: showDetail,
    destroy() {
      abort?.abort();
      detailAbort?.abort();
      socket?.close();
      detailChart?.destroy();
      if (frame) cancelAnimationFrame(frame);
    },
  };
}
