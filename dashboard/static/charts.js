// Time-series charts on uPlot (vendored, the global `uPlot`): one chart per figure, a series per model, null
// buckets drawn as gaps, model switches and alerts marked on the time axis, colours from the page's CSS (so
// the dark theme applies to charts too). A chart is rebuilt when the theme or its set of series changes, and
// is only given the new arrays otherwise.

import { alertText, switchText } from "./alertinfo.js";
import { DASH, h } from "./app.js";

const dark = window.matchMedia("(prefers-color-scheme: dark)");
const charts = new Set();
dark.addEventListener("change", () => {
  for (const c of charts) c.rebuild();
});

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
const dtf = (options) => new Intl.DateTimeFormat(undefined, options);
const HM = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
const TICK_S = dtf({ ...HM, second: "2-digit" });
const TICK_M = dtf(HM);
const TICK_DM = dtf({ month: "short", day: "numeric", ...HM });
const TICK_D = dtf({ month: "short", day: "numeric" });
const LONG = dtf({ month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
const COUNT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6];

/** Time-axis labels on one line, as precise as the tick spacing needs (local time). */
function timeTicks(u, splits, axis, space, incr) {
  const span = u.scales.x.max - u.scales.x.min;
  const f = incr >= 86400 ? TICK_D : span > 86400 ? TICK_DM : incr < 60 ? TICK_S : TICK_M;
  return splits.map((t) => f.format(new Date(t * 1000)));
}

const missing = (v) => v === null || v === undefined;

/** Indices of the values whose neighbours are both empty: no line reaches them, so they need a point. */
function isolated(values) {
  const out = [];
  for (let i = 0; i < values.length; i++) {
    if (!missing(values[i]) && missing(values[i - 1]) && missing(values[i + 1])) out.push(i);
  }
  return out;
}

export class Chart {
  /**
   * `format(v)`: a value for the legend; `axisFormat(v)`: for the y axis (default `format`); `rate`: values
   * in [0, 1] (the axis ends at 100% or a little above the largest value); `integer`: whole-number ticks.
   */
  constructor(parent, { title, note = "", format, axisFormat, rate = false, integer = false }) {
    Object.assign(this, { format, axisFormat: axisFormat || format, rate, integer });
    this.plotEl = h("div", { class: "plot" });
    this.emptyEl = h("p", { class: "chart-empty", hidden: true }, "No data in this window.");
    const caption = h("figcaption", {}, title, note ? h("small", {}, ` ${note}`) : null);
    this.el = h("figure", { class: "chart" }, caption, this.plotEl, this.emptyEl);
    parent.append(this.el);
    this.plot = null;
    this.key = "";
    this.input = null;
    this.switches = [];
    this.alerts = [];
    charts.add(this);
    new ResizeObserver(() => this.plot && this.plot.setSize(this.size())).observe(this.plotEl);
  }

  size() {
    const width = Math.max(240, Math.floor(this.plotEl.clientWidth || this.el.clientWidth || 320));
    return { width, height: width < 500 ? 170 : 200 };
  }

  /**
   * `t`: epoch seconds; `series`: [{label, color, values, dash}]; `marks`: the timeseries answer's
   * `switches` (switch events, at `ts`) and `alerts` (at `opened_at`).
   */
  update(t, series, marks = {}) {
    this.input = { t, series, marks };
    const empty = !series.some((s) => s.values.some((v) => !missing(v)));
    this.emptyEl.hidden = !empty;
    this.plotEl.hidden = empty;
    if (empty) return;
    this.switches = (marks.switches || []).map((s) => ({ ...s, t: Date.parse(s.ts) / 1000 }));
    this.alerts = (marks.alerts || []).map((a) => ({ ...a, t: Date.parse(a.opened_at) / 1000 }));
    const data = [t, ...series.map((s) => s.values)];
    const key = series.map((s) => `${s.label}|${s.color}|${s.dash || ""}`).join(";");
    if (this.plot && key === this.key) {
      this.plot.setData(data);
    } else {
      this.key = key;
      this.build(data, series);
    }
  }

  rebuild() {
    if (!this.input) return;
    this.key = "";
    this.update(this.input.t, this.input.series, this.input.marks);
  }

  build(data, series) {
    if (this.plot) this.plot.destroy();
    const grid = css("--grid");
    const axis = { stroke: css("--muted"), grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const mark = css("--switch");
    const value = (f) => (u, v) => (missing(v) ? DASH : f(v));
    const lonely = (u, i, all) => (all ? null : isolated(u.data[i]));
    const yRange = (u, min, max) => {
      if (missing(min) || missing(max)) return [0, 1];
      const top = max > 0 ? max * 1.1 : 1;
      return [0, this.rate ? Math.min(1, Math.max(top, 0.05)) : top];
    };
    const opts = {
      ...this.size(),
      cursor: { drag: { x: true, y: false }, points: { size: 7 } },
      scales: { x: { time: true }, y: { range: yRange } },
      series: [
        { value: value((v) => LONG.format(new Date(v * 1000))) },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 1.5,
          dash: s.dash,
          spanGaps: false,
          // where points are too dense to draw, still draw a bucket between two empty ones
          points: { size: 5, fill: s.color, stroke: s.color, filter: lonely },
          value: value(this.format),
        })),
      ],
      axes: [
        { ...axis, values: timeTicks, space: (u) => (u.scales.x.max - u.scales.x.min > 86400 ? 110 : 80) },
        {
          ...axis,
          size: 56,
          values: (u, ticks) => ticks.map((v) => this.axisFormat(v)),
          ...(this.integer ? { incrs: COUNT_STEPS } : {}),
        },
      ],
      hooks: { draw: [(u) => this.drawMarks(u, mark)] },
    };
    this.plot = new uPlot(opts, data, this.plotEl);
  }

  /**
   * A dashed vertical line per model switch with a marker above it, and a marker below the plot per alert
   * (coloured by its state), each with a tooltip that says what happened.
   */
  drawMarks(u, color) {
    const { ctx, bbox } = u;
    if (!this.marks) this.marks = h("div", { class: "switch-marks" });
    if (this.marks.parentNode !== u.over) u.over.append(this.marks);
    this.marks.replaceChildren();
    const shown = (m) => m.t >= u.scales.x.min && m.t <= u.scales.x.max;
    const marker = (m, cls, text, data) => {
      const el = h("span", { class: cls, title: text, "aria-label": text, role: "img", ...data });
      el.style.left = `${u.valToPos(m.t, "x")}px`;
      this.marks.append(el);
    };
    const px = devicePixelRatio;
    ctx.save();
    ctx.strokeStyle = color;
    ctx.lineWidth = Math.max(1, px);
    ctx.setLineDash([4 * px, 3 * px]);
    for (const s of this.switches.filter(shown)) {
      const x = Math.round(u.valToPos(s.t, "x", true));
      ctx.beginPath();
      ctx.moveTo(x, bbox.top);
      ctx.lineTo(x, bbox.top + bbox.height);
      ctx.stroke();
      const text = `${switchText(s)} · ${LONG.format(new Date(s.t * 1000))}`;
      marker(s, "switch-mark", text, { "data-agent": s.agent, "data-kind": s.kind });
    }
    ctx.restore();
    for (const a of this.alerts.filter(shown)) {
      const text = `${alertText(a)} · opened ${LONG.format(new Date(a.t * 1000))}`;
      const data = { "data-alert": a.id, "data-state": a.state, "data-kind": a.kind };
      marker(a, `alert-mark a-${a.state === "open" ? "open" : "resolved"}`, text, data);
    }
  }
}
