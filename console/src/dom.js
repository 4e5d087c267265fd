// Small DOM and formatting helpers shared by the views. No framework: each view builds its
// elements once and updates text in place, so nothing reflows as data arrives.

/** An element: h('button', { class: 'x', onclick: f }, 'text', child). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'value' || key === 'checked' || key === 'selected') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Epoch ms as `2026-12-06 07:45:10Z` (UTC, as the API speaks). */
export function fmtTime(ms) {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return String(ms);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** A duration in ms, short: `850 ms`, `12 s`, `4 min`, `3 h`, `2 d`. */
export function fmtDuration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  const sign = ms < 0 ? '−' : '';
  const a = Math.abs(ms);
  if (a < 1000) return `${sign}${Math.round(a)} ms`;
  if (a < 120e3) return `${sign}${(a / 1000).toFixed(a < 10e3 ? 1 : 0)} s`;
  if (a < 120 * 60e3) return `${sign}${Math.round(a / 60e3)} min`;
  if (a < 48 * 3600e3) return `${sign}${Math.round(a / 3600e3)} h`;
  return `${sign}${Math.round(a / 86400e3)} d`;
}

const numberFormat = new Intl.NumberFormat('en-US', { maximumSignificantDigits: 6 });

export function fmtNum(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v !== 'number') return String(v);
  return numberFormat.format(v);
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** `key:value key2:value2` into [['key','value'], ...]; throws on a term without a colon. */
export function parseTags(text) {
  const terms = text.trim().split(/[\s,]+/).filter(Boolean);
  return terms.map((term) => {
    const at = term.indexOf(':');
    if (at <= 0 || at === term.length - 1) {
      throw new Error(`tag filter '${term}' must be key:value`);
    }
    return [term.slice(0, at), term.slice(at + 1)];
  });
}

/** Whether `id` matches the metric glob `pattern` (`*` any run, `?` one character), as the API. */
export function globMatch(pattern, id) {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, 's').test(id);
}

/** A message line that keeps its height whether empty or not (no layout shift). */
export function statusLine(cls = '') {
  return h('p', { class: `status ${cls}`, role: 'status', 'aria-live': 'polite' }, '\u00a0');
}

export function setStatus(el, text, kind = '') {
  const value = text || '\u00a0';
  // Unchanged text is not rewritten: a live region re-announces every write.
  if (el.textContent !== value) el.textContent = value;
  if (el.dataset.kind !== kind) el.dataset.kind = kind;
}

/** Calls `f` every `ms` while the view lives; returns a stop function. */
export function every(ms, f) {
  const id = setInterval(f, ms);
  return () => clearInterval(id);
}
