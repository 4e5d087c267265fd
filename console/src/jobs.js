// The jobs view: every job's state, per-partition watermark (and how far it trails the wall
// clock), offsets and lag, open windows, state size, last checkpoint and webhooks, refreshed
// every two seconds; a savepoint or a stop of a job; a new job from YAML or JSON, with the
// server's validation error shown at the key it names.

import { api, ApiError } from './api.js';
import { jobEditor } from './editor.js';
import { h, fill, fmtBytes, fmtDuration, fmtNum, fmtTime, setStatus, statusLine, every } from './dom.js';

const REFRESH = 2000;

export function jobsView(ctx) {
  const status = statusLine();
  const list = h('div', { class: 'jobs' });
  const editor = jobEditor();
  const startSelect = h('select', { id: 'job-start', name: 'start' },
    h('option', { value: 'earliest' }, 'earliest (every event the log holds)'), h('option', { value: 'latest' }, 'latest (new events only)'));
  const savepointInput = h('input', { id: 'job-savepoint', name: 'from_savepoint', placeholder: 'optional', autocomplete: 'off' });
  const submitStatus = statusLine();
  const submitForm = h('form', { class: 'submit-job', onsubmit: (e) => { e.preventDefault(); submit(); } },
    h('h2', { id: 'submit-title' }, 'Submit a job'),
    h('p', { class: 'hint' }, 'Runs next to the configured job over the same events, kept across restarts (needs an admin token when auth is on).'),
    editor.el,
    h('div', { class: 'controls' },
      h('label', { class: 'field' }, h('span', {}, 'Start from'), startSelect),
      h('label', { class: 'field' }, h('span', {}, 'From savepoint'), savepointInput),
      h('button', { type: 'submit' }, 'Submit job')),
    submitStatus);

  // One dialog for savepoints and stops, outside the refreshed list so a refresh cannot wipe it.
  const dialogTitle = h('h2', { id: 'job-dialog-title' });
  const dialogText = h('p');
  const nameInput = h('input', { id: 'job-dialog-name', name: 'name', autocomplete: 'off' });
  const nameLabel = h('label', { for: 'job-dialog-name' });
  const dialogStatus = h('p', { class: 'field-error', role: 'alert' });
  const confirm = h('button', { type: 'submit' });
  let action = null;
  const dialog = h('dialog', { 'aria-labelledby': 'job-dialog-title' },
    h('form', { method: 'dialog', onsubmit: (e) => { e.preventDefault(); action?.(); } },
      dialogTitle, dialogText, nameLabel, nameInput, dialogStatus,
      h('div', { class: 'actions' }, confirm, h('button', { type: 'button', class: 'quiet', onclick: () => dialog.close() }, 'Cancel'))));

  const el = h('section', { class: 'view jobs-view', 'aria-labelledby': 'jobs-title' },
    h('h1', { id: 'jobs-title' }, 'Jobs'), status, list, submitForm, dialog);

  function open(kind, job) {
    const savepoint = kind === 'savepoint';
    dialogTitle.textContent = savepoint ? `Savepoint of ${job}` : `Stop ${job}`;
    dialogText.textContent = savepoint
      ? 'A consistent copy of every partition\'s state, to start this or another job from later.'
      : 'The job takes a final checkpoint and stops; its results stay queryable. Name a savepoint to take one first (optional).';
    nameLabel.textContent = savepoint ? 'Savepoint name (optional)' : 'Savepoint before stopping (optional)';
    nameInput.value = '';
    dialogStatus.textContent = '';
    confirm.textContent = savepoint ? 'Take savepoint' : 'Stop job';
    confirm.className = savepoint ? '' : 'danger';
    action = async () => {
      confirm.disabled = true;
      dialogStatus.textContent = '';
      try {
        const name = nameInput.value.trim();
        if (savepoint) {
          const done = await api(`/jobs/${encodeURIComponent(job)}/savepoints`, { method: 'POST', body: name ? { name } : {} });
          setStatus(status, `savepoint '${done.name ?? name}' of ${job} taken`, 'ok');
        } else {
          const q = name ? `?savepoint=${encodeURIComponent(name)}` : '';
          await api(`/jobs/${encodeURIComponent(job)}${q}`, { method: 'DELETE' });
          setStatus(status, `${job} stopped`, 'ok');
        }
        dialog.close();
        refresh();
      } catch (e) {
        dialogStatus.textContent = e instanceof ApiError ? e.message : String(e);
      } finally {
        confirm.disabled = false;
      }
    };
    dialog.showModal();
    nameInput.focus();
  }

  function partitionRows(job, now) {
    return job.partitions.map((p) => {
      const lag = p.log_end_offset - p.next_offset;
      return h('tr', { 'data-partition': p.partition, 'data-watermark': p.watermark ?? '' },
        h('td', { class: 'num' }, p.partition),
        h('td', {}, p.watermark === null ? 'no event yet' : fmtTime(p.watermark)),
        h('td', { class: 'num' }, p.watermark === null ? '—' : fmtDuration(now - p.watermark)),
        h('td', { class: 'num' }, fmtNum(p.next_offset)),
        h('td', { class: `num ${lag > 0 ? 'warn' : ''}` }, fmtNum(lag)),
        h('td', { class: 'num' }, fmtNum(p.events)),
        h('td', { class: 'num' }, fmtNum(p.late_events)),
        h('td', { class: 'num' }, fmtNum(p.open_windows)),
        h('td', { class: 'num' }, fmtBytes(p.state_bytes)));
    });
  }

  /** job name → { el, badge, buttons, body }: built once, so focus stays on a button. */
  const cards = new Map();

  function card(job) {
    let c = cards.get(job.job);
    if (!c) {
      const savepoint = h('button', { type: 'button', onclick: () => open('savepoint', job.job) }, 'Savepoint');
      const stopButton = h('button', { type: 'button', class: 'danger', onclick: () => open('stop', job.job) }, 'Stop');
      const badge = h('span', { class: 'badge' });
      const body = h('div');
      const el = h('article', { class: 'job', 'data-job': job.job, 'aria-labelledby': `job-${job.job}` },
        h('header', {}, h('h2', { id: `job-${job.job}` }, job.job), badge, h('div', { class: 'actions' }, savepoint, stopButton)),
        body);
      c = { el, badge, body, buttons: [savepoint, stopButton] };
      cards.set(job.job, c);
    }
    const running = job.state === 'running';
    c.el.dataset.state = job.state;
    c.badge.className = `badge ${job.state}`;
    c.badge.textContent = job.state;
    for (const b of c.buttons) b.disabled = !running;
    // The tables are rebuilt: keep where each was scrolled sideways (on a narrow screen).
    const scrolled = [...c.body.querySelectorAll('.table-wrap')].map((w) => w.scrollLeft);
    fill(c.body, details(job, Date.now()));
    c.body.querySelectorAll('.table-wrap').forEach((w, i) => { w.scrollLeft = scrolled[i] ?? 0; });
    return c.el;
  }

  function details(job, now) {
    const cp = job.last_checkpoint;
    return [
      job.error ? h('p', { class: 'error' }, job.error) : null,
      job.store_error ? h('p', { class: 'error' }, `store writes failing: ${job.store_error}`) : null,
      h('dl', { class: 'facts' },
        h('dt', {}, 'Windows'), h('dd', {}, job.windows?.join(', ') || '—'),
        h('dt', {}, 'Raw events'), h('dd', {}, job.keep_raw_events ? 'kept (GET /events)' : 'not kept'),
        h('dt', {}, 'Ingest'), h('dd', {}, `${fmtNum(job.ingest_accepted)} accepted, ${fmtNum(job.ingest_rejected)} rejected`),
        h('dt', {}, 'Checkpoints'), h('dd', {}, `${fmtNum(job.checkpoints_completed)} completed, ${fmtNum(job.checkpoints_failed)} failed`),
        h('dt', {}, 'Last checkpoint'), h('dd', { class: 'last-checkpoint' }, cp
          ? `#${cp.id}, ${fmtDuration(now - cp.completed_ms)} ago, ${fmtBytes(cp.bytes)}, took ${fmtDuration(cp.duration_ms)}`
          : 'none yet'),
        h('dt', {}, 'Store errors'), h('dd', {}, fmtNum(job.store_errors))),
      job.partitions.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'partitions' },
        h('caption', {}, 'Partitions'),
        h('thead', {}, h('tr', {}, ['Partition', 'Watermark', 'Behind clock', 'Offset', 'Lag', 'Events', 'Late', 'Open windows', 'State']
          .map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, partitionRows(job, now)))) : h('p', { class: 'hint' }, 'No partitions run in this process.'),
      job.webhooks?.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'webhooks' },
        h('caption', {}, 'Webhooks'),
        h('thead', {}, h('tr', {}, Object.keys(job.webhooks[0]).map((k) => h('th', { scope: 'col' }, k.replace(/_/g, ' '))))),
        h('tbody', {}, job.webhooks.map((w) => h('tr', {}, Object.values(w).map((v) => h('td', {}, typeof v === 'number' ? fmtNum(v) : String(v ?? '—')))))))) : null,
    ];
  }

  let busy = false;
  let stop = () => {};
  async function refresh() {
    // One refresh at a time; none while the token dialog is up.
    if (busy || document.querySelector('#token-dialog')?.open) return;
    busy = true;
    try {
      const { jobs } = await api('/jobs');
      if (!jobs.length) {
        fill(list, h('p', { class: 'empty' }, 'No jobs. Submit one below.'));
      } else {
        const els = jobs.map(card);
        // Re-append only when the set or order of jobs changed (appending moves focus away).
        const same = els.length === list.children.length && els.every((e, i) => list.children[i] === e);
        if (!same) fill(list, els);
      }
      if (status.dataset.kind === 'error') setStatus(status, '');
    } catch (e) {
      setStatus(status, e instanceof ApiError ? e.message : String(e), 'error');
      // Without a token every refresh would ask for one again: wait for the user to give one
      // (the page remounts then).
      if (e.status === 401) stop();
    } finally {
      busy = false;
    }
  }

  async function submit() {
    editor.clear();
    const read = editor.read();
    if (!read) return;
    const body = { job: read.job, start: startSelect.value };
    if (savepointInput.value.trim()) body.from_savepoint = savepointInput.value.trim();
    setStatus(submitStatus, 'submitting…');
    try {
      const created = await api('/jobs', { method: 'POST', body });
      setStatus(submitStatus, `job '${created.job}' submitted`, 'ok');
      await ctx.refreshJobs();
      refresh();
    } catch (e) {
      setStatus(submitStatus, '');
      editor.showError(e instanceof ApiError ? e.message : String(e), read);
    }
  }

  stop = every(REFRESH, refresh);
  refresh();
  return { name: 'jobs', el, destroy: () => stop() };
}
