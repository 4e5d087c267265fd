// End-to-end checks of the console in a real headless Chromium (playwright-core driving the
// machine's browser), against a running platform. Started by the Rust test
// crates/streampulse/tests/console_browser.rs, which starts the binary and feeds it; by hand:
//
//   CONSOLE_URL=http://127.0.0.1:8080 CHROMIUM=/usr/bin/chromium METRIC=console.m00 node tests/e2e.mjs
//
// Environment: CONSOLE_URL, CHROMIUM (the browser executable), SCREENSHOTS (a directory for one
// PNG per page), MODE (`full`; `auth`: the page must ask for a token; `serve`: an API-only
// process following JOB), TOKEN (the valid one in `auth` mode), METRIC (a metric with results), PREFIX (the glob of the fed metrics, e.g.
// `console.*`), SPIKE_METRIC (a warmed-up metric to post a spike to), NEXT_TS (epoch ms after
// every event sent so far). Exits 1 naming the failed step; prints one line per step.

import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const url = env('CONSOLE_URL');
const mode = env('MODE', 'full');
const shots = env('SCREENSHOTS', join(process.cwd(), 'screenshots'));
mkdirSync(shots, { recursive: true });

// Flags for a closed network: no background connections, no first-run work.
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

function check(condition, message) {
  if (!condition) throw new Error(message);
}

let nextTs = Number(env('NEXT_TS', String(Date.now())));
async function post(events, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${url}/events`, { method: 'POST', headers, body: events.map((e) => JSON.stringify(e)).join('\n') });
  const body = await res.json();
  check(res.ok && body.accepted === events.length, `POST /events: ${res.status} ${JSON.stringify(body)}`);
}

async function step(name, f) {
  const started = Date.now();
  try {
    const detail = await f();
    console.log(`ok   ${name} (${Date.now() - started} ms)${detail ? `: ${detail}` : ''}`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message}`);
    throw e;
  }
}

const browser = await chromium.launch({ executablePath: env('CHROMIUM'), args: FLAGS, headless: true });
const problems = [];
// What a step provokes on purpose (e.g. the 400 of an invalid job), not counted as a problem.
let expected = null;
async function newPage(viewport) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // A 401 is how the page learns that a token is needed; the browser logs it as an error.
    if (expected && expected.test(m.text())) return;
    if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()} (${m.location().url})`);
  });
  page.on('response', (r) => {
    if (expected && expected.test(`${r.status()} ${r.url()}`)) return;
    if (r.status() >= 400 && r.status() !== 401) problems.push(`${r.status()} from ${r.request().method()} ${r.url()}`);
  });
  return page;
}
const maxPoints = (page, metric) => page.evaluate(
  (m) => Number(document.querySelector(`figure.chart[data-metric="${m}"]`)?.dataset.points ?? 0), metric);

try {
  if (mode === 'auth') await authFlow();
  else if (mode === 'serve') await serveFlow();
  else await fullFlow();
  check(problems.length === 0, `errors in the page:\n${problems.join('\n')}`);
  console.log('all steps passed');
} catch (e) {
  if (problems.length) console.log(`errors in the page:\n${problems.join('\n')}`);
  await browser.close();
  process.exit(1);
}
await browser.close();

async function fullFlow() {
  const metric = env('METRIC');
  const prefix = env('PREFIX');
  const spike = env('SPIKE_METRIC');
  const page = await newPage({ width: 1280, height: 800 });

  await step('live: a chart shows the points of a metric', async () => {
    await page.goto(`${url}/#/live`);
    await page.fill('#live-metrics', prefix);
    await page.click('form.controls button[type=submit]');
    await page.waitForFunction((m) => Number(document.querySelector(`figure.chart[data-metric="${m}"]`)?.dataset.points) >= 3, metric, { timeout: 10000 });
    check(await page.locator(`figure.chart[data-metric="${metric}"] canvas`).count() === 1, 'no canvas in the chart');
    await page.waitForFunction(() => /live/.test(document.querySelector('.live .status')?.textContent ?? ''), null, { timeout: 5000 });
    return `${await maxPoints(page, metric)} windows`;
  });

  await step('live: the metric field suggests ids from the catalog', async () => {
    await page.fill('#live-metrics', '');
    await page.type('#live-metrics', metric.slice(0, -1));
    const want = Array.from({ length: 10 }, (_, i) => metric.slice(0, -1) + i);
    await page.waitForFunction((w) => [...document.querySelectorAll('#metric-ids option')].map((o) => o.value).join() === w.join(), want, { timeout: 5000 });
    const label = await page.getAttribute('#metric-ids option', 'label');
    check(/^host:h\d$/.test(label), `suggestion label: ${label}`);
    await page.fill('#live-metrics', prefix);
    return `${want.length} suggestions for '${metric.slice(0, -1)}'`;
  });

  await step('live: at most 50 charts, and the page says more match', async () => {
    const charts = await page.locator('figure.chart').count();
    check(charts === 50, `${charts} charts`);
    const text = await page.locator('.live .status').textContent();
    check(/more match than the 50 shown/.test(text), `status: ${text}`);
  });

  await step('live: a closed window arrives over the WebSocket', async () => {
    const before = await maxPoints(page, metric);
    // Two windows' worth of later events: the watermark passes the end of the next window.
    const events = [];
    for (let i = 0; i < 25; i += 1) events.push({ metric_id: metric, ts: nextTs + i * 1000, value: 50 + (i % 3) });
    nextTs += 25_000;
    await post(events);
    await page.waitForFunction(([m, n]) => Number(document.querySelector(`figure.chart[data-metric="${m}"]`)?.dataset.points) > n, [metric, before], { timeout: 5000 });
    return `${before} → ${await maxPoints(page, metric)} windows`;
  });
  await page.screenshot({ path: join(shots, 'live.png') });

  await step('live: 50 charts updated every second stay smooth, without layout shift', async () => {
    const fast = env('FAST_WINDOW');
    const ids = Array.from({ length: 60 }, (_, i) => `${prefix.replace('*', '')}${String(i).padStart(2, '0')}`);
    const second = (k) => ids.map((id, i) => ({ metric_id: id, ts: nextTs + k * 1000, value: 100 + i + (k % 3) }));
    // Events ahead of the watermark's out-of-orderness (5 s), so each later second closes one
    // window of every metric.
    for (let k = 0; k < 6; k += 1) await post(second(k));
    await page.fill('#live-metrics', prefix);
    await page.selectOption('#live-window', fast);
    await page.click('form.controls button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('figure.chart[data-points]:not([data-points="0"])').length === 50, null, { timeout: 10000 });
    await page.waitForFunction(() => /live/.test(document.querySelector('.live .status')?.textContent ?? ''), null, { timeout: 5000 });
    const points = () => page.evaluate(() => Object.fromEntries([...document.querySelectorAll('figure.chart')].map((f) => [f.dataset.metric, Number(f.dataset.points)])));
    const before = await points();
    await page.evaluate(() => {
      const perf = { gaps: [], shift: 0, long: [] };
      window.__perf = perf;
      let last = performance.now();
      const frame = (t) => {
        perf.gaps.push(t - last);
        last = t;
        if (!perf.stop) requestAnimationFrame(frame);
      };
      requestAnimationFrame(frame);
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) if (!e.hadRecentInput) perf.shift += e.value;
      }).observe({ type: 'layout-shift' });
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) perf.long.push(e.duration);
      }).observe({ type: 'longtask' });
    });
    const seconds = 8;
    for (let k = 6; k < 6 + seconds; k += 1) {
      const started = Date.now();
      await post(second(k));
      await page.waitForTimeout(Math.max(0, 1000 - (Date.now() - started)));
    }
    nextTs += (6 + seconds) * 1000;
    await page.waitForFunction(([b, n]) => [...document.querySelectorAll('figure.chart')]
      .every((f) => Number(f.dataset.points) >= b[f.dataset.metric] + n), [before, seconds], { timeout: 5000 });
    const perf = await page.evaluate(() => {
      window.__perf.stop = true;
      return window.__perf;
    });
    const gaps = perf.gaps.slice(1).sort((a, b) => a - b);
    const at = (q) => gaps[Math.min(gaps.length - 1, Math.floor(q * gaps.length))];
    // Google's bound for a good cumulative layout shift.
    check(perf.shift < 0.1, `layout shift ${perf.shift.toFixed(3)} while charts updated`);
    return `50 charts × ${seconds} s: ${gaps.length} frames, frame gap p50 ${at(0.5).toFixed(1)} ms, p99 ${at(0.99).toFixed(1)} ms, `
      + `max ${gaps[gaps.length - 1].toFixed(1)} ms; long tasks ${perf.long.length} (longest ${Math.round(Math.max(0, ...perf.long))} ms); `
      + `layout shift ${perf.shift.toFixed(3)}`;
  });

  await step('live: with a tag filter, a new metric carrying the tags is charted and another is not', async () => {
    const base = prefix.replace('*', '');
    await page.fill('#live-metrics', prefix);
    await page.selectOption('#live-window', env('FAST_WINDOW'));
    await page.fill('#live-tags', 'host:h1');
    await page.click('form.controls button[type=submit]');
    await page.waitForFunction(() => /live/.test(document.querySelector('.live .status')?.textContent ?? ''), null, { timeout: 10000 });
    const before = await page.locator('figure.chart').count();
    const events = [];
    for (let k = 0; k < 8; k += 1) {
      events.push({ metric_id: `${base}x1`, ts: nextTs + k * 1000, value: 1, tags: { host: 'h1' } });
      events.push({ metric_id: `${base}x2`, ts: nextTs + k * 1000, value: 2, tags: { host: 'h2' } });
    }
    nextTs += 8000;
    await post(events);
    await page.locator(`figure.chart[data-metric="${base}x1"]`).waitFor({ timeout: 5000 });
    await page.waitForTimeout(500);
    check(await page.locator(`figure.chart[data-metric="${base}x2"]`).count() === 0, `${base}x2 (host:h2) is charted under host:h1`);
    const after = await page.locator('figure.chart').count();
    check(after === before + 1, `${before} charts before, ${after} after`);
    await page.fill('#live-tags', '');
    return `${before} → ${after} charts`;
  });

  await step('alerts: an injected spike is in the table within a second', async () => {
    await page.goto(`${url}/#/alerts`);
    await page.waitForFunction(() => /live/.test(document.querySelector('.alerts .status')?.textContent ?? ''), null, { timeout: 5000 });
    await post([{ metric_id: spike, ts: nextTs, value: 1_000_000 }]);
    nextTs += 1000;
    const posted = Date.now();
    const row = page.locator('tr.alert-row', { has: page.locator(`td:text-is("${spike}")`) }).first();
    await row.waitFor({ timeout: 1000 });
    const elapsed = Date.now() - posted;
    check((await row.getAttribute('class')).includes('firing'), 'the spike\'s alert is not firing');
    await row.click();
    await page.locator('#alert-detail-title').waitFor({ timeout: 5000 });
    await page.locator('.detail canvas').waitFor({ timeout: 5000 });
    const hint = await page.textContent('.detail .hint');
    check(hint.startsWith(`the raw events of ${spike}`), `detail: ${hint}`);
    return `${elapsed} ms after the POST was answered`;
  });
  await page.screenshot({ path: join(shots, 'alerts.png') });

  await step('jobs: the watermark advances', async () => {
    await page.goto(`${url}/#/jobs`);
    const partitions = page.locator('article.job[data-job="default"] tr[data-partition]');
    await partitions.first().waitFor({ timeout: 5000 });
    const highest = () => page.evaluate(() => Math.max(...[...document.querySelectorAll('article.job[data-job="default"] tr[data-partition]')]
      .map((r) => Number(r.dataset.watermark || 0))));
    const before = await highest();
    await post([{ metric_id: metric, ts: nextTs + 10_000, value: 51 }]);
    nextTs += 11_000;
    await page.waitForFunction((b) => Math.max(...[...document.querySelectorAll('article.job[data-job="default"] tr[data-partition]')]
      .map((r) => Number(r.dataset.watermark || 0))) > b, before, { timeout: 6000 });
    return `${before} → ${await highest()}`;
  });
  await page.screenshot({ path: join(shots, 'jobs.png') });

  await step('jobs: an invalid job shows the server\'s error at its key', async () => {
    expected = /\b400\b/;
    await page.fill('#job-text', 'name: bad_job\nwindows:\n  - name: hop\n    type: sliding\n    size: 1m\n');
    await page.click('form.submit-job button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#job-error')?.textContent.includes('job.windows[0].slide'), null, { timeout: 5000 });
    const line = await page.getAttribute('#job-error', 'data-line');
    check(line === '3', `error marked at line ${line}, not 3 (the window without a slide)`);
    const marked = await page.locator('.gutter .marked').textContent();
    check(marked === '3', `gutter marks ${marked}`);
    check(await page.getAttribute('#job-text', 'aria-invalid') === 'true', 'editor not marked invalid');
    expected = null;
    return (await page.textContent('#job-error')).slice(0, 80);
  });
  await page.locator('form.submit-job').scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(shots, 'jobs-error.png') });

  await step('jobs: a valid job is submitted and listed', async () => {
    await page.fill('#job-text', 'job:\n  name: console_p99\n  windows:\n    - { name: tumble_1m, type: tumbling, size: 1m, aggregates: [p99] }\n  detectors: []\n');
    await page.click('form.submit-job button[type=submit]');
    await page.locator('article.job[data-job="console_p99"]').waitFor({ timeout: 10000 });
  });

  await step('jobs: a savepoint and a stop from the job\'s buttons', async () => {
    const card = page.locator('article.job[data-job="console_p99"]');
    await card.locator('button', { hasText: 'Savepoint' }).click();
    await page.fill('#job-dialog-name', 'console-sp');
    await page.click('dialog[open] button[type=submit]');
    await page.waitForFunction(() => /savepoint 'console-sp' of console_p99 taken/.test(document.querySelector('.jobs-view .status')?.textContent ?? ''), null, { timeout: 10000 });
    await card.locator('button', { hasText: 'Stop' }).click();
    await page.click('dialog[open] button[type=submit]');
    await page.waitForFunction(() => document.querySelector('article.job[data-job="console_p99"]')?.dataset.state === 'stopped', null, { timeout: 10000 });
  });

  await step('live: a stopped job shows its stored results and opens no WebSocket', async () => {
    await page.selectOption('#job', 'console_p99');
    await page.goto(`${url}/#/live`);
    await page.waitForFunction(() => /job stopped/.test(document.querySelector('.live .status')?.textContent ?? ''), null, { timeout: 10000 });
    let sockets = 0;
    const count = () => { sockets += 1; };
    page.on('websocket', count);
    await page.waitForTimeout(3000);
    page.off('websocket', count);
    check(sockets === 0, `${sockets} WebSocket attempts for a stopped job`);
    await page.selectOption('#job', 'default');
  });

  await step('query: the table, the curl command and the CSV agree with the API', async () => {
    await page.goto(`${url}/#/query/${encodeURIComponent(metric)}`);
    await page.locator('table.results tbody tr').first().waitFor({ timeout: 5000 });
    const curl = await page.textContent('pre.curl');
    check(curl.startsWith('curl ') && curl.includes('/metrics?') && curl.includes(`metric_id=${encodeURIComponent(metric)}`), `curl: ${curl}`);
    const apiUrl = curl.slice(curl.indexOf("'") + 1, curl.lastIndexOf("'"));
    const answer = await (await fetch(apiUrl)).json();
    const shown = await page.locator('table.results tbody tr').count();
    check(shown === answer.results.length, `${shown} rows shown, the API answers ${answer.results.length}`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('text=Download CSV')]);
    const csv = readFileSync(await download.path(), 'utf8').trim().split('\n');
    check(csv[0].startsWith('metric_id,window,window_start,window_end,count,sum,min,max,mean'), `CSV header: ${csv[0]}`);
    check(csv.length - 1 === answer.results.length, `CSV has ${csv.length - 1} rows, the API ${answer.results.length}`);
    const first = answer.results[0];
    check(csv[1].startsWith(`${first.metric_id},${first.window},${first.window_start},${first.window_end},${first.count},`), `CSV row: ${csv[1]}`);
    return `${shown} rows`;
  });
  await page.screenshot({ path: join(shots, 'query.png') });

  await step('phone width: the pages fit without sideways scrolling', async () => {
    const phone = await newPage({ width: 390, height: 844 });
    await phone.goto(`${url}/#/live`);
    await phone.waitForFunction((m) => Number(document.querySelector(`figure.chart[data-metric="${m}"]`)?.dataset.points) >= 1, metric, { timeout: 10000 });
    const width = await phone.evaluate(() => document.documentElement.scrollWidth);
    check(width <= 390, `page is ${width}px wide`);
    await phone.screenshot({ path: join(shots, 'live-phone.png') });
    // The jobs page refreshes every 2 s; a partition table scrolled sideways stays where it was.
    await phone.goto(`${url}/#/jobs`);
    const wrap = phone.locator('article.job[data-job="default"] .table-wrap').first();
    await wrap.waitFor({ timeout: 5000 });
    const pageWidth = await phone.evaluate(() => document.documentElement.scrollWidth);
    check(pageWidth <= 390, `the jobs page is ${pageWidth}px wide`);
    await wrap.evaluate((w) => { w.scrollLeft = 120; });
    const before = await wrap.evaluate((w) => w.scrollLeft);
    check(before > 0, 'the partition table does not scroll sideways at 390 px');
    await phone.waitForTimeout(2500);
    const after = await wrap.evaluate((w) => w.scrollLeft);
    check(after === before, `scrolled to ${before}, after a refresh at ${after}`);
    for (const view of ['alerts', 'query']) {
      await phone.goto(`${url}/#/${view}`);
      await phone.locator(`section.view h1`).waitFor({ timeout: 5000 });
      await phone.waitForTimeout(500);
      const width = await phone.evaluate(() => document.documentElement.scrollWidth);
      check(width <= 390, `the ${view} page is ${width}px wide`);
    }
  });

  await step('keyboard: the pages are reachable with Tab and Enter', async () => {
    await page.goto(`${url}/#/live`);
    await page.reload();
    await page.locator('figure.chart').first().waitFor({ timeout: 10000 });
    // From the top of the page: brand, then Live, Alerts.
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => document.activeElement?.textContent) === 'Alerts', 'third Tab stop is not the Alerts link');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => window.location.hash === '#/alerts');
    await page.locator('tr.alert-row').first().waitFor({ timeout: 5000 });
    await page.locator('tr.alert-row').first().focus();
    await page.keyboard.press('Enter');
    await page.locator('#alert-detail-title').waitFor({ timeout: 5000 });
  });
}

// `streampulse serve`: the API alone over the shared store, following the workers' job.
async function serveFlow() {
  const job = env('JOB');
  const page = await newPage({ width: 1280, height: 800 });
  await step('serve: the API-only process lists the workers\' job and follows it live', async () => {
    await page.goto(`${url}/#/live`);
    await page.waitForFunction((j) => [...document.querySelectorAll('#job option')].some((o) => o.value === j), job, { timeout: 10000 });
    await page.waitForFunction(() => /live/.test(document.querySelector('.live .status')?.textContent ?? ''), null, { timeout: 10000 });
  });
  await step('serve: the jobs page shows the job as remote, without savepoint or stop', async () => {
    await page.goto(`${url}/#/jobs`);
    const card = page.locator(`article.job[data-job="${job}"][data-state="remote"]`);
    await card.waitFor({ timeout: 10000 });
    check(await card.locator('button', { hasText: 'Stop' }).isDisabled(), 'Stop is enabled on a remote job');
  });
  await page.screenshot({ path: join(shots, 'serve-jobs.png') });
}

async function authFlow() {
  const token = env('TOKEN');
  const metric = env('METRIC');
  const page = await newPage({ width: 1280, height: 800 });
  await step('auth: the page asks for a token', async () => {
    await page.goto(`${url}/#/live`);
    await page.locator('#token-dialog[open]').waitFor({ timeout: 5000 });
    const reason = await page.textContent('#token-dialog .dialog-reason');
    check(/auth on/.test(reason), `dialog says: ${reason}`);
  });
  await page.screenshot({ path: join(shots, 'token.png') });
  await step('auth: a wrong token is asked again', async () => {
    await page.fill('#token', 'not-the-token');
    await page.click('#token-dialog button[type=submit]');
    await page.waitForTimeout(300);
    await page.locator('#token-dialog[open]').waitFor({ timeout: 5000 });
  });
  await step('auth: with the token the charts load', async () => {
    await page.fill('#token', token);
    await page.click('#token-dialog button[type=submit]');
    await page.locator('#token-dialog[open]').waitFor({ state: 'detached', timeout: 5000 }).catch(() => {});
    check(!(await page.locator('#token-dialog').evaluate((d) => d.open)), 'the dialog is still open');
    await page.fill('#live-metrics', metric);
    await page.click('form.controls button[type=submit]');
    await page.waitForFunction((m) => Number(document.querySelector(`figure.chart[data-metric="${m}"]`)?.dataset.points) >= 1, metric, { timeout: 10000 });
    // The WebSocket takes the token as ?access_token=.
    await page.waitForFunction(() => /live/.test(document.querySelector('.live .status')?.textContent ?? ''), null, { timeout: 5000 });
    const stored = await page.evaluate(() => sessionStorage.getItem('streampulse.token'));
    check(stored === token, 'the token is not in the tab\'s session storage');
  });
}
