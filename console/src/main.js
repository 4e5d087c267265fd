// The console's shell: header, navigation, job picker, token dialog, and the hash router that
// mounts one view at a time (#/live, #/alerts, #/jobs, #/query). A view is a function
// (ctx) => { el, destroy }; destroy closes its sockets and timers.

import { api, ApiError, setToken, token } from './api.js';
import { h, fill } from './dom.js';
import { liveView } from './live.js';
import { alertsView } from './alerts.js';
import { jobsView } from './jobs.js';
import { queryView } from './query.js';

const VIEWS = {
  live: { title: 'Live', make: liveView },
  alerts: { title: 'Alerts', make: alertsView },
  jobs: { title: 'Jobs', make: jobsView },
  query: { title: 'Query', make: queryView },
};
const JOB_KEY = 'streampulse.job';

const state = { jobs: [], jobsError: null, current: null };

const nav = h('nav', { 'aria-label': 'Pages' },
  Object.entries(VIEWS).map(([name, v]) => h('a', { href: `#/${name}`, 'data-view': name }, v.title)));
const jobSelect = h('select', { id: 'job', 'aria-label': 'Job', onchange: () => {
  sessionStorage.setItem(JOB_KEY, jobSelect.value);
  // The views start from the job's status (running or not): take a fresh one.
  refreshJobs().then(mount);
} });
const tokenButton = h('button', { type: 'button', class: 'quiet', onclick: () => askToken() }, 'Token');
const header = h('header', { class: 'top' },
  h('a', { href: '#/live', class: 'brand' }, h('img', { src: '/console/favicon.svg', alt: '', width: 22, height: 22 }), 'StreamPulse'),
  nav,
  h('div', { class: 'top-right' }, h('label', { for: 'job', class: 'sr-only' }, 'Job'), jobSelect, tokenButton));
const main = h('main', { id: 'view', tabindex: '-1' });

// The token dialog: shown when the API answers 401, or from the header's button.
const tokenInput = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true, minlength: 1 });
const tokenReason = h('p', { class: 'dialog-reason' });
const tokenDialog = h('dialog', { id: 'token-dialog', 'aria-labelledby': 'token-title' },
  h('form', { method: 'dialog', onsubmit: (e) => {
    e.preventDefault();
    setToken(tokenInput.value.trim());
    tokenDialog.close();
    refreshJobs().then(mount);
  } },
  h('h2', { id: 'token-title' }, 'API token'),
  tokenReason,
  h('label', { for: 'token' }, 'Token (kept in this tab only)'),
  tokenInput,
  h('div', { class: 'actions' },
    h('button', { type: 'submit' }, 'Use token'),
    h('button', { type: 'button', class: 'quiet', onclick: () => {
      setToken('');
      tokenInput.value = '';
      tokenDialog.close();
    } }, 'Forget token'))));

function askToken(reason) {
  tokenReason.textContent = reason
    || (token() ? 'A token is set for this tab. Enter another to replace it.' : 'Enter a token if this platform has auth on.');
  if (!tokenDialog.open) {
    tokenInput.value = '';
    tokenDialog.showModal();
    tokenInput.focus();
  }
}

window.addEventListener('unauthorized', (e) => {
  askToken(`This platform has auth on: ${e.detail} Enter a read token (or a write or admin token to also submit and stop jobs).`);
});

async function refreshJobs() {
  try {
    const { jobs } = await api('/jobs');
    state.jobs = jobs;
    state.jobsError = null;
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    state.jobs = [];
    state.jobsError = e;
  }
  const chosen = sessionStorage.getItem(JOB_KEY);
  const names = state.jobs.map((j) => j.job);
  fill(jobSelect, names.map((n) => h('option', { value: n, selected: n === chosen }, n)));
  if (!names.includes(chosen) && names.length) jobSelect.value = names[0];
  jobSelect.disabled = names.length === 0;
}

function currentJob() {
  return state.jobs.find((j) => j.job === jobSelect.value) || null;
}

function route() {
  const hash = window.location.hash.replace(/^#\/?/, '');
  const [name, ...rest] = hash.split('/');
  return { name: VIEWS[name] ? name : 'live', arg: rest.join('/') || null };
}

function mount() {
  state.current?.destroy?.();
  const { name, arg } = route();
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${VIEWS[name].title} · StreamPulse`;
  const job = currentJob();
  try {
    const view = VIEWS[name].make({
      job: job ? job.job : undefined,
      jobStatus: job,
      jobsError: state.jobsError?.message ?? null,
      arg,
      refreshJobs,
    });
    state.current = view;
    fill(main, view.el);
  } catch (e) {
    state.current = null;
    fill(main, h('p', { class: 'error', role: 'alert' }, `This page failed to open: ${e.message}`));
  }
}

// While no job is listed because the platform did not answer, look again every few seconds
// (a 401 waits for a token instead: the dialog remounts the page).
setInterval(async () => {
  if (state.jobs.length || state.jobsError?.status !== 0) return;
  await refreshJobs();
  if (state.jobs.length) mount();
}, 5000);

window.addEventListener('hashchange', () => {
  const { name } = route();
  // Sub-routes of the same view (an alert's detail) are handled by the view itself.
  if (state.current?.name === name && state.current.onRoute) {
    state.current.onRoute(route().arg);
  } else {
    mount();
    // A screen reader follows to the new page; the next Tab starts in it.
    main.focus({ preventScroll: true });
  }
});

document.body.append(header, main, tokenDialog);
refreshJobs().then(mount);
