// Tools: per tool and model, how often calls to it were malformed (by kind) and how often its results
// were errors, with the most frequent error messages.

import {
  $,
  DASH,
  api,
  colorsFor,
  fill,
  fmt,
  h,
  jsonTwin,
  pageUrl,
  params,
  sameAsBefore,
  startPage,
  suggest,
  swatch,
  windowPicker,
  windowQuery,
} from "./app.js";

// [heading, field of the tools answer, format]
const COLUMNS = [
  ["tool", "tool", "text"],
  ["model", "model", "text"],
  ["calls", "calls", "count"],
  ["malformed", "malformed", "count"],
  ["malformed rate", "malformed_rate", "rate"],
  ["by kind", "malformed_by_kind", "kinds"],
  ["results", "results", "count"],
  ["errors", "errors", "count"],
  ["error rate", "error_rate", "rate"],
  ["most frequent errors", "top_errors", "errors"],
];
const NUMERIC = new Set(["count", "rate"]);

function cell(row, [, field, kind]) {
  const value = row[field] === undefined ? null : row[field];
  const attrs = { "data-field": field, "data-value": JSON.stringify(value) };
  if (field === "tool") return h("th", { ...attrs, scope: "row", class: "mono" }, value);
  if (field === "model") {
    return h("td", attrs, swatch(value), h("a", { href: pageUrl("./", { model: value }) }, value));
  }
  if (kind === "errors") {
    const items = (value || []).map((e) => h("li", {}, h("code", {}, e)));
    return h("td", { ...attrs, class: "wrap" }, items.length ? h("ol", { class: "errors" }, items) : DASH);
  }
  return h("td", { ...attrs, class: NUMERIC.has(kind) ? "num" : kind }, fmt[kind](value));
}

function render(rows) {
  colorsFor(rows.map((r) => r.model));
  const table = $("#tools");
  const head = COLUMNS.map(([label, , k]) => h("th", { scope: "col", class: NUMERIC.has(k) ? "num" : "" }, label));
  fill(table.tHead, h("tr", {}, head));
  const body = rows.map((r) => h("tr", { "data-tool": r.tool, "data-model": r.model }, COLUMNS.map((c) => cell(r, c))));
  fill(table.tBodies[0], body);
  $("#tools-empty").hidden = rows.length > 0;
  table.setAttribute("data-loaded", "");
}

const same = sameAsBefore();

async function load(signal) {
  const p = params();
  const query = { ...windowQuery(p), model: p.model, agent: p.agent };
  jsonTwin("tools", query);
  const { data, text } = await api("tools", query, signal);
  suggest("model", data.map((r) => r.model));
  if (!same("tools", text)) render(data);
}

windowPicker({ model: "model", agent: "agent" });
startPage(load);
