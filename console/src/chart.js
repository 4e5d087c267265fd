// One time-series chart of window results (uPlot): the mean as a line, the min–max range as a
// band, p99 dashed when the window computes it, and markers drawn over the plot: alert episodes
// (shaded from where they opened to where they resolved, or to the right edge while firing),
// revisions (a triangle at the top where a window was re-emitted with late data) and late events
// that missed every window (ticks at the bottom).

import uPlot from 'uplot';
import { fmtNum } from './dom.js';

export const CHART_HEIGHT = 180;

const COLORS = {
  mean: '#1d4ed8',
  band: 'rgba(29, 78, 216, 0.12)',
  range: 'rgba(29, 78, 216, 0.30)',
  p99: '#b45309',
  critical: 'rgba(220, 38, 38, 0.18)',
  criticalEdge: 'rgba(220, 38, 38, 0.9)',
  warning: 'rgba(217, 119, 6, 0.16)',
  warningEdge: 'rgba(217, 119, 6, 0.9)',
  revision: '#7c3aed',
  late: '#be123c',
};

/** The arrays uPlot draws from rows of one metric and window (any order). */
export function columns(rows) {
  const sorted = [...rows].sort((a, b) => a.window_start - b.window_start);
  const xs = sorted.map((r) => r.window_end / 1000);
  const pick = (k) => sorted.map((r) => (typeof r[k] === 'number' ? r[k] : null));
  return [xs, pick('mean'), pick('min'), pick('max'), pick('p99')];
}

/**
 * A chart in `box`. `marks()` gives { alerts: [...], revisions: [ms...], late: [ms...] } at
 * draw time, so markers follow the data without rebuilding the chart.
 */
export function makeChart(box, rows, marks) {
  const opts = {
    width: Math.max(box.clientWidth, 200),
    height: CHART_HEIGHT,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    series: [
      {},
      { label: 'mean', stroke: COLORS.mean, width: 1.5, points: { size: 4 } },
      { label: 'min', stroke: COLORS.range, width: 1, points: { show: false } },
      { label: 'max', stroke: COLORS.range, width: 1, points: { show: false } },
      { label: 'p99', stroke: COLORS.p99, width: 1, dash: [4, 3], points: { show: false } },
    ],
    bands: [{ series: [3, 2], fill: COLORS.band }],
    axes: [
      { stroke: '#555', grid: { stroke: '#eee' } },
      // Wide enough for the longest tick label (uPlot passes the formatted labels).
      { stroke: '#555', grid: { stroke: '#eee' }, values: (u, vals) => vals.map(fmtNum),
        size: (u, labels) => Math.max(40, ...(labels ?? []).map((l) => String(l).length * 7.5 + 16)) },
    ],
    hooks: { draw: [(u) => drawMarks(u, marks())] },
  };
  return new uPlot(opts, columns(rows), box);
}

function drawMarks(u, { alerts = [], revisions = [], late = [] }) {
  const { ctx } = u;
  const { left, top, width, height } = u.bbox;
  const x = (ms) => u.valToPos(ms / 1000, 'x', true);
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  for (const a of alerts) {
    const critical = a.severity === 'critical';
    const x0 = x(a.first_ts);
    const end = a.state === 'firing' ? left + width : x(a.resolved_ts ?? a.last_ts);
    ctx.fillStyle = critical ? COLORS.critical : COLORS.warning;
    ctx.fillRect(x0, top, Math.max(end - x0, 3), height);
    ctx.fillStyle = critical ? COLORS.criticalEdge : COLORS.warningEdge;
    ctx.fillRect(x0 - 1, top, 2, height);
  }
  const pad = 6 * devicePixelRatio;
  ctx.fillStyle = COLORS.revision;
  for (const ms of revisions) {
    const px = x(ms);
    ctx.beginPath();
    ctx.moveTo(px - pad / 2, top);
    ctx.lineTo(px + pad / 2, top);
    ctx.lineTo(px, top + pad);
    ctx.closePath();
    ctx.fill();
  }
  ctx.fillStyle = COLORS.late;
  for (const ms of late) {
    ctx.fillRect(x(ms) - 1, top + height - pad, 2, pad);
  }
  ctx.restore();
}

/** The chart's key, as text under it. */
export function legendItems(hasP99) {
  const items = [['mean', 'line'], ['min–max', 'band']];
  if (hasP99) items.push(['p99', 'dash']);
  items.push(['alert', 'alert'], ['revision', 'revision'], ['late event', 'late']);
  return items;
}
