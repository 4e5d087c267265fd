// The job editor: a text area for YAML or JSON (JSON is YAML), with line numbers, that turns a
// server error naming a key (`job.windows[0].slide: required for a sliding window`) into a
// marked line and a message under the editor.

import { parseDocument, isMap, isSeq } from 'yaml';
import { h, fill } from './dom.js';

export const TEMPLATE = `# The keys of the config file's job: section (YAML or JSON).
name: p99_1m
windows:
  - name: tumble_1m
    type: tumbling
    size: 1m
    aggregates: [p99]
detectors: []
`;

/** `job.windows[0].slide` → ['windows', 0, 'slide'] (the leading `job` dropped). */
export function keyPath(key) {
  const parts = [];
  for (const m of key.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) {
    parts.push(m[2] !== undefined ? Number(m[2]) : m[1]);
  }
  if (parts[0] === 'job') parts.shift();
  return parts;
}

/** The key an error detail starts with (`job.windows[0].slide: …`), or null. */
export function errorKey(detail) {
  const m = /^(job(?:\.[A-Za-z0-9_]+|\[\d+\])*):\s/.exec(detail);
  return m ? m[1] : null;
}

/** The 1-based line of the deepest node of `path` the document has (a missing key: its parent). */
function lineOf(doc, text, path) {
  let node = doc.contents;
  let offset = node?.range?.[0] ?? 0;
  for (const part of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => String(p.key?.value ?? p.key) === String(part));
      if (!pair) break;
      offset = pair.key?.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof part === 'number' && node.items[part]) {
      node = node.items[part];
      offset = node?.range?.[0] ?? offset;
    } else {
      break;
    }
  }
  return text.slice(0, offset).split('\n').length;
}

export function jobEditor() {
  const area = h('textarea', { id: 'job-text', name: 'job', spellcheck: 'false', rows: 14, 'aria-label': 'The job, in YAML or JSON', 'aria-describedby': 'job-error', value: TEMPLATE });
  const gutter = h('div', { class: 'gutter', 'aria-hidden': 'true' });
  const error = h('p', { id: 'job-error', class: 'field-error', role: 'alert' });
  const wrap = h('div', { class: 'editor' }, gutter, area);
  let marked = 0;

  function numbers() {
    const lines = area.value.split('\n').length;
    fill(gutter, Array.from({ length: lines }, (_, i) => h('div', { class: i + 1 === marked ? 'marked' : '' }, String(i + 1))));
    gutter.scrollTop = area.scrollTop;
  }
  area.addEventListener('input', () => {
    marked = 0;
    area.removeAttribute('aria-invalid');
    error.textContent = '';
    numbers();
  });
  area.addEventListener('scroll', () => { gutter.scrollTop = area.scrollTop; });
  numbers();

  function mark(line, message) {
    marked = line;
    numbers();
    area.setAttribute('aria-invalid', 'true');
    error.textContent = line ? `line ${line}: ${message}` : message;
    error.dataset.line = String(line || '');
    if (line) {
      const lines = area.value.split('\n');
      const start = lines.slice(0, line - 1).join('\n').length + (line > 1 ? 1 : 0);
      area.focus();
      area.setSelectionRange(start, start + lines[line - 1].length);
    }
  }

  return {
    el: h('div', {}, wrap, error),
    /** The job object, or null after marking the syntax error. */
    read() {
      const text = area.value;
      const doc = parseDocument(text);
      if (doc.errors.length) {
        const e = doc.errors[0];
        mark(e.linePos?.[0]?.line ?? 0, e.message.split('\n')[0]);
        return null;
      }
      const value = doc.toJS();
      if (!value || typeof value !== 'object' || Array.isArray(value)) {
        mark(1, 'a job is a mapping of keys: name, windows, detectors, …');
        return null;
      }
      // A whole config file's `job:` section pasted as is.
      const nested = Object.keys(value).length === 1 && value.job && typeof value.job === 'object';
      return { job: nested ? value.job : value, nested, doc, text };
    },
    /** Shows a server error at the key it names. */
    showError(detail, read) {
      const key = errorKey(detail);
      if (!key || !read) {
        mark(0, detail);
        return;
      }
      const path = keyPath(key);
      mark(lineOf(read.doc, read.text, read.nested ? ['job', ...path] : path), detail);
    },
    clear() {
      marked = 0;
      error.textContent = '';
      area.removeAttribute('aria-invalid');
      numbers();
    },
  };
}
