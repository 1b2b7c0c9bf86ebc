// Overview: the per-model report as a table (each cell carries the report's raw value for tests and
// scripts), costs with the price table's source, and the figures over time.

import {
  $,
  DASH,
  api,
  colorOf,
  colorsFor,
  fill,
  fmt,
  h,
  jsonTwin,
  pageUrl,
  params,
  sameAsBefore,
  setParams,
  startPage,
  suggest,
  swatch,
  timeEl,
  windowPicker,
  windowQuery,
} from "./app.js";
import { alertModels, figuresText, kindLabel, switchHow } from "./alertinfo.js";
import { Chart } from "./charts.js";

// [heading, report field, format, tooltip]; groups of columns after them
const COLUMNS = [
  ["model", "model", "text", "the model that answered (or was asked for, when none answered)"],
  ["upstream", "upstream", "text", "where the calls went"],
  ["calls", "llm_calls", "count", "LLM calls"],
  ["tool calls", "tool_calls", "count", "tool calls the model made"],
  ["malformed", "malformed_rate", "rate", "malformed tool calls / tool calls"],
  ["by kind", "malformed_by_kind", "kinds", "malformed tool calls by kind"],
  ["tool errors", "tool_error_rate", "rate", "tool results that were errors / tool results"],
  ["sessions", "sessions", "count", "sessions (agent runs)"],
  ["success", "session_success_rate", "rate", "successful sessions / closed sessions"],
  ["recovery", "recovery_rate", "rate", "failed steps the session recovered from / failed steps"],
  ["cascade", "cascade_rate", "rate", "sessions with a run of failed steps / closed sessions"],
  ["loops", "loop_sessions", "count", "sessions that repeated the same tool call"],
  ["http errors", "http_error_rate", "rate", "calls answered with an HTTP error"],
  ["p50 ms", "latency_p50_ms", "ms", "median latency"],
  ["p95 ms", "latency_p95_ms", "ms", "95th percentile latency"],
  ["cost", "cost_usd", "usd", "list-price cost of the tokens (– when the model has no known price)"],
  ["per success", "cost_per_successful_session_usd", "usd", "cost / successful sessions"],
];
const GROUPS = [
  ["", 2],
  ["volume", 2],
  ["tool calls", 3],
  ["sessions", 5],
  ["http", 3],
  ["cost (USD)", 2],
];

function detail(row, field) {
  const n = fmt.count;
  switch (field) {
    case "malformed_rate":
      return `${n(row.malformed_calls)} of ${n(row.tool_calls)} tool calls`;
    case "tool_error_rate":
      return `${n(row.tool_errors)} errors`;
    case "sessions":
      return `${n(row.open_sessions)} open, ${n(row.abandoned_sessions)} abandoned`;
    case "session_success_rate":
      return `${n(row.successful_sessions)} successful`;
    case "recovery_rate":
      return `${n(row.recovered_failures)} of ${n(row.failed_steps)} failed steps recovered`;
    case "cascade_rate":
      return `${n(row.cascade_sessions)} sessions cascading`;
    case "cost_usd":
      if (row.cost_usd === null) return "no price known for this model";
      return (
        `tokens: ${n(row.input_tokens)} in, ${n(row.output_tokens)} out, ` +
        `${n(row.cache_read_tokens)} cache read, ${n(row.cache_write_tokens)} cache write`
      );
    case "cost_per_successful_session_usd":
      return row.cost_per_successful_session_usd === null ? "unknown price, or no successful session" : "";
    default:
      return "";
  }
}

const align = (kind) => (kind === "kinds" ? "kinds" : kind === "text" ? "" : "num");

function cell(row, [, field, kind]) {
  const value = row[field] === undefined ? null : row[field];
  const attrs = { "data-field": field, "data-value": JSON.stringify(value), class: align(kind) };
  const tip = detail(row, field);
  if (tip) attrs.title = tip;
  if (field === "model") {
    const link = h("a", { href: pageUrl("sessions", { model: value }), title: "this model's sessions" }, value);
    return h("th", { ...attrs, scope: "row" }, swatch(value), link);
  }
  return h("td", attrs, fmt[kind](value));
}

function renderTable(rows) {
  const table = $("#report");
  const sort = params().sort || "";
  const [field, dir] = sort.split(":");
  if (field && COLUMNS.some((c) => c[1] === field)) {
    const sign = dir === "asc" ? 1 : -1;
    rows = [...rows].sort((a, b) => {
      const [x, y] = [a[field], b[field]];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sign;
    });
  }
  const groups = GROUPS.map(([label, span]) => h("th", { colspan: span, scope: "colgroup" }, label));
  const groupRow = h("tr", { class: "groups" }, groups);
  const headRow = h(
    "tr",
    {},
    COLUMNS.map(([label, f, kind, tip]) => {
      const current = f === field ? (dir === "asc" ? "ascending" : "descending") : null;
      const next = f === field && dir !== "asc" ? `${f}:asc` : `${f}:desc`;
      const sort = () => setParams({ sort: next }, { replace: true });
      return h(
        "th",
        { scope: "col", title: tip, class: align(kind) === "num" ? "num" : "", "aria-sort": current },
        h("button", { type: "button", class: "sort", onclick: sort }, label)
      );
    })
  );
  fill(table.tHead || table.createTHead(), groupRow, headRow);
  const body = rows.map((row) => h("tr", { "data-model": row.model }, COLUMNS.map((c) => cell(row, c))));
  fill(table.tBodies[0] || table.createTBody(), body);
  $("#report-empty").hidden = rows.length > 0;
  table.setAttribute("data-loaded", "");
}

// ---- charts ----------------------------------------------------------------------------------------------

let charts = null;

function makeCharts() {
  const box = $("#charts");
  const pct = (digits) => (v) => `${(v * 100).toFixed(digits)}%`;
  const rate = (title, note) => new Chart(box, { title, note, format: pct(1), axisFormat: pct(0), rate: true });
  return {
    malformed: rate("Malformed tool calls", "share of tool calls"),
    toolErrors: rate("Tool errors", "share of tool results"),
    cascade: rate("Cascading sessions", "share of closed sessions"),
    success: rate("Session success", "share of closed sessions"),
    latency: new Chart(box, {
      title: "Latency",
      note: "p50 solid, p95 dashed (ms)",
      format: (v) => `${fmt.ms(v)} ms`,
      axisFormat: fmt.num,
    }),
    volume: new Chart(box, { title: "LLM calls", note: "per bucket", format: fmt.count, integer: true }),
  };
}

function kindSelector(kinds) {
  const select = $("#kind");
  const chosen = params().kind || "";
  const options = [h("option", { value: "" }, "all kinds"), ...kinds.map((k) => h("option", { value: k }, k))];
  if (chosen && !kinds.includes(chosen)) options.push(h("option", { value: chosen }, chosen));
  select.replaceChildren(...options);
  select.value = chosen;
}

function renderCharts(ts) {
  charts = charts || makeCharts();
  const models = Object.keys(ts.models).sort();
  const kinds = [...new Set(models.flatMap((m) => Object.keys(ts.models[m].malformed_rate_by_kind || {})))].sort();
  kindSelector(kinds);
  const kind = params().kind || "";
  const per = (pick) => models.map((m) => ({ label: m, color: colorOf(m), values: pick(ts.models[m]) }));
  const sw = { switches: ts.switches || [], alerts: ts.alerts || [] };
  const byKind = (s) => (s.malformed_rate_by_kind || {})[kind] || s.tool_calls.map((n) => (n ? 0 : null));
  const malformed = models.map((m) => ({
    label: kind ? `${m} · ${kind}` : m,
    color: colorOf(m),
    values: kind ? byKind(ts.models[m]) : ts.models[m].malformed_rate,
  }));
  charts.malformed.update(ts.t, malformed, sw);
  charts.toolErrors.update(ts.t, per((s) => s.tool_error_rate), sw);
  charts.cascade.update(ts.t, per((s) => s.cascade_rate), sw);
  charts.success.update(ts.t, per((s) => s.session_success_rate), sw);
  charts.latency.update(
    ts.t,
    models.flatMap((m) => [
      { label: `${m} p50`, color: colorOf(m), values: ts.models[m].latency_p50_ms },
      { label: `${m} p95`, color: colorOf(m), values: ts.models[m].latency_p95_ms, dash: [5, 4] },
    ]),
    sw
  );
  charts.volume.update(ts.t, per((s) => s.llm_calls.map((v) => v || 0)), sw);

  renderMarks(sw);
  $("#step").textContent = `one point per ${humanStep(ts.step_s)}`;
  $("#charts").setAttribute("data-loaded", "");
}

const model = (m) => [swatch(m), m];

/** The switches and alerts marked on the time axis, as a list (the markers' tooltips say the same). */
function renderMarks({ switches, alerts }) {
  const dot = (cls) => h("span", { class: cls, "aria-hidden": "true" });
  const switchItem = (s) =>
    h(
      "li",
      { "data-switch": s.id, "data-agent": s.agent },
      dot("switch-dot"),
      timeEl(s.ts, "short"),
      " ",
      h("strong", {}, s.agent),
      ": ",
      model(s.old_model),
      " → ",
      model(s.new_model),
      ` (${switchHow(s)})`
    );
  const alertItem = (a) =>
    h(
      "li",
      { "data-alert": a.id, "data-state": a.state },
      dot(`alert-dot a-${a.state === "open" ? "open" : "resolved"}`),
      timeEl(a.opened_at, "short"),
      " ",
      h("a", { href: pageUrl("alerts", { agent: a.agent }), title: "this agent's alerts" }, kindLabel(a.kind)),
      ` (${a.state}) `,
      h("strong", {}, a.agent),
      ": ",
      alertModels(a).map((m, i) => [i ? " → " : "", model(m)]),
      `, ${figuresText(a)}`
    );
  fill(
    $("#switches"),
    switches.length ? h("li", { class: "label" }, "Model switches:") : null,
    switches.map(switchItem)
  );
  fill($("#alert-marks"), alerts.length ? h("li", { class: "label" }, "Alerts:") : null, alerts.map(alertItem));
}

function humanStep(s) {
  if (s % 86400 === 0) return `${s / 86400} d`;
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}

// ---- prices ----------------------------------------------------------------------------------------------

let pricesShown = false;

/** The price table's source and date, once (a failure leaves the footnote empty until the next poll). */
async function loadPrices(signal) {
  if (pricesShown) return;
  let data;
  try {
    ({ data } = await api("prices", {}, signal));
  } catch (e) {
    if (e.name === "AbortError") throw e;
    return;
  }
  const known = Object.keys(data.models || {}).length;
  fill(
    $("#prices"),
    "Costs use list prices (",
    fmt.text(data.unit),
    `, ${known} models) as of `,
    h("time", { datetime: data.as_of }, fmt.text(data.as_of)),
    ": ",
    fmt.text(data.source),
    ` A model without a known price shows ${DASH}: it is never guessed.`
  );
  pricesShown = true;
}

// ---- the page --------------------------------------------------------------------------------------------

const same = sameAsBefore();
let last = null; // the latest answers, for a redraw with another sort or kind

async function load(signal) {
  const p = params();
  const query = { ...windowQuery(p), model: p.model, agent: p.agent };
  jsonTwin("report", query);
  const [report, ts] = await Promise.all([
    api("report", query, signal),
    api("timeseries", query, signal),
    loadPrices(signal),
  ]);
  if (signal.aborted) return;
  colorsFor([...report.data.map((r) => r.model), ...Object.keys(ts.data.models)]);
  suggest("model", report.data.map((r) => r.model));
  suggest("agent", [...(ts.data.switches || []), ...(ts.data.alerts || [])].map((s) => s.agent));
  last = { report: report.data, ts: ts.data };
  if (!same("report", report.text + (p.sort || ""))) renderTable(report.data);
  if (!same("timeseries", ts.text + (p.kind || ""))) renderCharts(ts.data);
}

function redraw() {
  if (!last) return;
  renderTable(last.report);
  renderCharts(last.ts);
}

windowPicker({ model: "model", agent: "agent" });
$("#kind").addEventListener("change", (e) => setParams({ kind: e.target.value }, { replace: true }));
startPage(load, { view: ["sort", "kind"], redraw });
