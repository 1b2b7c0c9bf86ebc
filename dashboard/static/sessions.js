// Sessions: the agent runs in the window, newest first, filtered and paged; each links to its timeline.

import {
  $,
  InputError,
  api,
  badge,
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

const PAGE_SIZES = [50, 100, 200, 500];
const HEAD = [
  ["session"],
  ["outcome"],
  ["model"],
  ["agent"],
  ["user"],
  ["steps", "num"],
  ["failed", "num", "failed steps"],
  ["unrecovered", "num", "failed steps never recovered from"],
  ["longest run", "num", "the longest run of consecutive failed steps"],
  ["started"],
  ["lasted", "num", "from the first call to the last"],
  ["properties"],
];

const properties = (obj) =>
  Object.entries(obj || {})
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");

function row(s) {
  const link = h("a", { class: "session-link", href: pageUrl("session", { session: s.session }) }, s.session);
  const flags = [s.cascade ? [" ", badge("cascade")] : null, s.loop ? [" ", badge("loop")] : null];
  return h(
    "tr",
    { "data-session": s.session },
    h("th", { scope: "row", class: "mono" }, link),
    h("td", { "data-field": "outcome" }, badge(s.outcome), flags),
    h("td", {}, swatch(s.model), s.model),
    h("td", {}, fmt.text(s.agent)),
    h("td", {}, fmt.text(s.user_id)),
    h("td", { class: "num" }, fmt.count(s.steps)),
    h("td", { class: "num" }, fmt.count(s.failed_steps)),
    h("td", { class: "num" }, fmt.count(s.unrecovered_steps)),
    h("td", { class: "num" }, fmt.count(s.longest_failure_run)),
    h("td", {}, timeEl(s.first_ts, "short")),
    h("td", { class: "num" }, fmt.duration((Date.parse(s.last_ts) - Date.parse(s.first_ts)) / 1000)),
    h("td", { class: "mono" }, properties(s.properties))
  );
}

function pager(count, last, offset) {
  const newer = () => setParams({ offset: Math.max(0, offset - last) || null });
  const older = () => setParams({ offset: offset + last });
  const size = h(
    "select",
    { "aria-label": "sessions per page", onchange: (e) => setParams({ last: e.target.value, offset: null }) },
    PAGE_SIZES.map((n) => h("option", { value: n }, `${n} a page`))
  );
  size.value = String(last);
  return [
    h("button", { type: "button", disabled: offset === 0, onclick: newer }, "← newer"),
    h("button", { type: "button", disabled: count < last, onclick: older }, "older →"),
    size,
    h("span", {}, count ? `sessions ${fmt.count(offset + 1)}–${fmt.count(offset + count)}` : ""),
  ];
}

function render(rows, last, offset) {
  colorsFor(rows.map((r) => r.model));
  const table = $("#sessions");
  const head = HEAD.map(([label, cls, title]) => h("th", { scope: "col", class: cls, title }, label));
  fill(table.tHead, h("tr", {}, head));
  fill(table.tBodies[0], rows.map(row));
  $("#sessions-empty").hidden = rows.length > 0;
  fill($("#pager"), pager(rows.length, last, offset));
  table.setAttribute("data-loaded", "");
}

const same = sameAsBefore();

async function load(signal) {
  const p = params();
  const last = Number.parseInt(p.last, 10) || 50;
  const offset = Number.parseInt(p.offset, 10) || 0;
  if (p.property && !p.property.includes("=")) {
    throw new InputError("The property filter takes NAME=VALUE, e.g. env=prod.");
  }
  const query = { ...p, ...windowQuery(p), last, offset: offset || null };
  jsonTwin("sessions", query);
  const { data, text } = await api("sessions", query, signal);
  suggest("model", data.map((s) => s.model));
  suggest("agent", data.map((s) => s.agent));
  suggest("user", data.map((s) => s.user_id));
  suggest("property", data.flatMap((s) => Object.entries(s.properties || {}).map(([k, v]) => `${k}=${v}`)));
  if (!same("sessions", `${text}${last}:${offset}`)) render(data, last, offset);
}

windowPicker({
  search: { label: "session id contains", size: 18 },
  model: "model",
  agent: "agent",
  user: "user",
  property: { label: "NAME=VALUE", size: 14 },
  outcome: { label: "outcome", options: ["open", "abandoned", "success", "failed"] },
  failed: { label: "failed only", check: true },
});
startPage(load);
