// Shared code of toolwatch's dashboard pages: the read API client, live polling, the window picker and the
// page chrome, DOM building and formatting. Every string that comes from the API reaches the DOM through
// text nodes or attribute values (never innerHTML): prompts and tool results are untrusted.

export const POLL_MS = 5000;

// The query parameters each read API endpoint accepts (it answers 400 to any other).
const API_PARAMS = {
  report: ["since", "until", "agent", "model"],
  timeseries: ["since", "until", "agent", "model", "step"],
  sessions: ["since", "until", "agent", "model", "user", "property", "outcome", "search", "failed", "last", "offset"],
  session: ["session", "since", "until"],
  call: ["id"],
  tools: ["since", "until", "agent", "model"],
  prices: [],
  status: [],
  alerts: ["open", "agent", "kind", "since", "last"],
  silences: [],
  // writes (POST)
  "alerts/ack": ["id", "by"],
  "alerts/silence": ["id", "agent", "kind", "for", "by", "comment"],
  "alerts/unsilence": ["id"],
};

// The dashboard's root (/_toolwatch/): this module is served from its static/ folder. Page and API URLs
// are relative to the root.
const ROOT = new URL("../", import.meta.url);

/** `path` (relative to the dashboard's root) as a URL for this page: unchanged on a page at the root. */
function rooted(path) {
  if (new URL(".", location.href).href === ROOT.href) return path;
  return ROOT.pathname + path.replace(/^\.\//, "");
}

const blank = (v) => v === null || v === undefined || v === "" || v === false;

// ---- DOM -------------------------------------------------------------------------------------------------

/** An element with attributes (set as attribute values) and children (strings become text nodes). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children, keeping which `<details data-key>` inside it were open. */
export function fill(el, ...children) {
  const open = new Set([...el.querySelectorAll("details[data-key][open]")].map((d) => d.dataset.key));
  el.replaceChildren();
  append(el, children);
  for (const d of el.querySelectorAll("details[data-key]")) if (open.has(d.dataset.key)) d.open = true;
}

export const $ = (selector) => document.querySelector(selector);

// ---- formatting ------------------------------------------------------------------------------------------

export const DASH = "–";
const nf = (options) => new Intl.NumberFormat(undefined, options);
const COUNT = nf({ maximumFractionDigits: 0 });
const NUM = nf({ maximumFractionDigits: 2 });
const KIB = nf({ maximumFractionDigits: 1 });
const PCT = nf({ style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 });
const USD = nf({ style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2 });
const USD_SMALL = nf({ style: "currency", currency: "USD", maximumSignificantDigits: 3 });
const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const SHORT = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const DATETIME = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

const or = (f) => (v) => (v === null || v === undefined ? DASH : f(v));

export const fmt = {
  count: or((v) => COUNT.format(v)),
  rate: or((v) => PCT.format(v)),
  ms: or((v) => COUNT.format(v)),
  num: or((v) => NUM.format(v)),
  usd: or((v) => (v === 0 || v >= 1 ? USD.format(v) : USD_SMALL.format(v))),
  text: (v) => (blank(v) ? DASH : String(v)),
  kinds: (obj) => {
    const parts = Object.entries(obj || {}).sort((a, b) => b[1] - a[1]);
    return parts.length ? parts.map(([k, n]) => `${k} ${COUNT.format(n)}`).join(", ") : DASH;
  },
  time: (iso) => (iso ? TIME.format(new Date(iso)) : DASH),
  datetime: (iso) => (iso ? DATETIME.format(new Date(iso)) : DASH),
  short: (iso) => (iso ? SHORT.format(new Date(iso)) : DASH),
  bytes: or((n) => (n < 1024 ? `${n} B` : `${KIB.format(n / 1024)} KiB`)),
  duration: or((s) => {
    if (Number.isNaN(s)) return DASH;
    if (s < 60) return `${NUM.format(Math.round(s * 10) / 10)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
    return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  }),
};

/** A `<time>` element: local time as text (`style`: time, short or datetime), the ISO time in its
 *  attribute and tooltip. */
export function timeEl(iso, style = "time") {
  if (!iso) return DASH;
  return h("time", { datetime: iso, title: iso }, fmt[style](iso));
}

const UNIT_S = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** "24h" -> 86400 (the read API's duration syntax); null when `text` is not a duration. */
export function durationS(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$/.exec(text || "");
  return m ? Number(m[1]) * UNIT_S[m[2]] : null;
}

// ---- URL state -------------------------------------------------------------------------------------------

/** The page's query parameters as an object. */
export function params() {
  return Object.fromEntries(new URLSearchParams(location.search));
}

const listeners = [];

/** Call `fn` when the page's parameters change (through `setParams` or the back button). */
export function onParams(fn) {
  listeners.push(fn);
}

function withQuery(path, q) {
  const query = q.toString();
  return query ? `${path}?${query}` : path;
}

/** Change some query parameters (empty values are removed) without reloading the page. */
export function setParams(changes, { replace = false } = {}) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (blank(v)) q.delete(k);
    else q.set(k, String(v));
  }
  const url = withQuery(location.pathname, q);
  if (url === location.pathname + location.search) return;
  history[replace ? "replaceState" : "pushState"](null, "", url);
  changed();
}

function changed() {
  for (const fn of listeners) fn(params());
}
window.addEventListener("popstate", changed);

/** A mistake in the page's own parameters, caught before asking the API. */
export class InputError extends Error {}

/** A write the user asked for (a button) that failed: its message is shown as it is. */
export class ActionError extends Error {}

/** The page's window for the API: `{since, until}`, or an InputError when one cannot be a time. */
export function windowQuery(p = params()) {
  const time = (v) => !Number.isNaN(Date.parse(v));
  if (p.since && durationS(p.since) === null && !time(p.since)) {
    throw new InputError(`The window start "${p.since}" is neither a duration (15m, 1h, 24h, 7d) nor a time.`);
  }
  if (p.until && p.until !== "now" && !time(p.until)) {
    throw new InputError(`The window end "${p.until}" is not a time.`);
  }
  return { since: p.since, until: p.until };
}

/** A link to another dashboard page that keeps the current window (since, until). */
export function pageUrl(page, extra = {}) {
  const p = params();
  const q = new URLSearchParams();
  for (const k of ["since", "until"]) if (p[k]) q.set(k, p[k]);
  for (const [k, v] of Object.entries(extra)) if (!blank(v)) q.set(k, String(v));
  return withQuery(rooted(page), q);
}

// ---- the read API ----------------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The read API's URL for one endpoint, with the parameters it accepts (relative to the page). */
export function apiUrl(name, query = {}) {
  const q = new URLSearchParams();
  for (const k of API_PARAMS[name]) if (!blank(query[k])) q.set(k, String(query[k]));
  return withQuery(rooted(`api/${name}`), q);
}

/** GET one endpoint: `{data, text}` (the text tells whether anything changed), or an ApiError. */
export async function api(name, query, signal) {
  return request(name, query, { signal, headers: { Accept: "application/json" } });
}

/** POST to a write endpoint (with the header that marks a write as the dashboard's own, see
 *  proxy/access.py): the object it answers, or an ApiError. */
export async function post(name, query) {
  const headers = { Accept: "application/json", "Toolwatch-Request": "1" };
  return (await request(name, query, { method: "POST", headers })).data;
}

async function request(name, query, init) {
  let response;
  try {
    response = await fetch(apiUrl(name, query), init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "toolwatch did not answer");
  }
  const text = await response.text();
  let data = null;
  try {
    data = JSON.parse(text);
  } catch {
    // not JSON: a proxy's or a browser's error page
  }
  if (!response.ok || data === null) {
    const message = data && typeof data.error === "string" ? data.error : `HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return { data, text };
}

function friendly(error) {
  if (error instanceof InputError || error instanceof ActionError) return error.message;
  if (!(error instanceof ApiError)) return `Something went wrong: ${error.message}. Retrying…`;
  const { status, message } = error;
  if (status === 0) return "Cannot reach toolwatch. Retrying every few seconds…";
  if (status === 503) return `The recorder is not answering yet (${message}). It may be starting; retrying…`;
  if (status === 401 || status === 403) {
    return "Not signed in: open /_toolwatch/login?token=… with the admin token, then come back.";
  }
  if (status === 404) return `Not found: ${message}`;
  if (status === 400) return `The read API refused this view: ${message}`;
  return `The read API answered ${status}: ${message}. Retrying…`;
}

let held = null; // a failed action's error: polls do not clear it

/** Show (or with null, hide) the page's notice line; a held action error shows when nothing else does. */
export function notice(error) {
  const el = $("#notice");
  if (!el) return;
  const shown = error || held;
  el.hidden = !shown;
  el.textContent = shown ? friendly(shown) : "";
}

/** Show the error of an action the user took (or with null, clear it) until the next action. */
export function actionNotice(error) {
  held = error;
  notice(null);
}

// ---- live polling ----------------------------------------------------------------------------------------

/**
 * Run `load(signal)` now and then every `interval` ms after the previous run ended: never two at once,
 * nothing while the tab is hidden (it runs again as soon as the tab is shown). For the page's own `load`
 * (`owner`), an error shows the notice and polling goes on; a successful run clears it. Returns
 * `refresh()`, which aborts the run in flight (its answer is for the old parameters) and starts another.
 */
export function live(load, interval = POLL_MS, { owner = true } = {}) {
  let timer = null;
  let controller = null;
  let again = false;

  async function tick() {
    clearTimeout(timer);
    timer = null;
    if (controller) {
      again = true;
      return;
    }
    if (document.hidden) return;
    controller = new AbortController();
    const { signal } = controller;
    try {
      await load(signal);
      if (owner && !signal.aborted) notice(null);
    } catch (e) {
      if (owner && !signal.aborted && e.name !== "AbortError") notice(e);
    } finally {
      controller = null;
    }
    if (again) {
      again = false;
      tick();
    } else if (!document.hidden) {
      timer = setTimeout(tick, interval);
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
    } else if (!controller && !timer) {
      tick();
    }
  });
  tick();
  return function refresh() {
    if (controller) {
      controller.abort();
      again = true;
    } else {
      tick();
    }
  };
}

/** Remembers the last answer per key, so a poll that brings nothing new does not rebuild the page. */
export function sameAsBefore() {
  const last = new Map();
  return (key, text) => {
    if (last.get(key) === text) return true;
    last.set(key, text);
    return false;
  };
}

// ---- the window picker and filters -----------------------------------------------------------------------

const WINDOWS = [
  ["15m", "15 min"],
  ["1h", "1 h"],
  ["24h", "24 h"],
  ["7d", "7 d"],
];

/** ISO time -> the value of a datetime-local input (local time), or "" for anything else. */
function toLocalInput(value) {
  if (!value || durationS(value) !== null) return "";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A datetime-local input's value (local time) -> ISO time in UTC. */
function fromLocalInput(value) {
  return value ? new Date(value).toISOString() : "";
}

function filterInput(name, spec) {
  const label = typeof spec === "string" ? spec : spec.label;
  const hidden = h("span", { class: "sr" }, label);
  if (spec.options) {
    const options = spec.options.map((o) => h("option", { value: o }, o));
    const input = h("select", { name }, h("option", { value: "" }, `any ${label}`), options);
    return [input, h("label", { class: "filter" }, hidden, input)];
  }
  if (spec.check) {
    const input = h("input", { type: "checkbox", name, value: "true" });
    return [input, h("label", { class: "filter" }, input, ` ${label}`)];
  }
  const input = h("input", { type: "search", name, placeholder: label, list: `${name}-list`, size: spec.size || 14 });
  return [input, h("label", { class: "filter" }, hidden, input, h("datalist", { id: `${name}-list` }))];
}

/**
 * The window picker (15 min, 1 h, 24 h, 7 d, custom) and the page's filters, in the form `#window`:
 * `fields` maps a query parameter to its label (a text field with suggestions), or to
 * `{label, options: [values]}` (a choice) or `{label, check: true}` (a checkbox). They edit the page's URL;
 * `onParams` listeners see each change.
 */
export function windowPicker(fields = {}) {
  const form = $("#window");
  const span = h("select", { name: "span", "aria-label": "window" });
  for (const [value, label] of WINDOWS) span.append(h("option", { value }, label));
  span.append(h("option", { value: "custom" }, "custom…"));
  const from = h("input", { type: "datetime-local", name: "from", "aria-label": "from" });
  const to = h("input", { type: "datetime-local", name: "to", "aria-label": "to (empty: now)" });
  const custom = h("span", { class: "custom" }, h("label", {}, "from ", from), h("label", {}, "to ", to));
  const inputs = {};
  const filters = Object.entries(fields).map(([name, spec]) => {
    const [input, label] = filterInput(name, spec);
    inputs[name] = input;
    return label;
  });
  const apply = h("button", { type: "submit" }, "Apply");
  const toNow = h("button", { type: "button", class: "link", title: "let the window end now, and move" }, "↻ live");
  form.replaceChildren(h("label", {}, h("span", { class: "sr" }, "window "), span), custom, ...filters, apply, toNow);

  function show(p) {
    const since = (p.since || "24h").trim();
    span.value = WINDOWS.some(([v]) => v === since) && !p.until ? since : "custom";
    custom.hidden = span.value !== "custom";
    // a duration with a fixed end (a shared view) shows as the range it stands for
    const seconds = durationS(since);
    const start = seconds !== null && p.until ? new Date(Date.parse(p.until) - seconds * 1000).toISOString() : since;
    from.value = toLocalInput(start);
    to.value = toLocalInput(p.until);
    toNow.hidden = !p.until;
    for (const [name, input] of Object.entries(inputs)) {
      if (input.type === "checkbox") input.checked = p[name] === "true";
      else input.value = p[name] || "";
    }
  }
  show(params());
  onParams(show);

  span.addEventListener("change", () => {
    if (span.value !== "custom") {
      setParams({ since: span.value, until: null, offset: null });
      return;
    }
    custom.hidden = false;
    if (!from.value) from.value = toLocalInput(new Date(Date.now() - 24 * 3600e3).toISOString());
    from.focus();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const changes = { offset: null };
    for (const [name, input] of Object.entries(inputs)) {
      changes[name] = input.type === "checkbox" ? input.checked : input.value.trim();
    }
    if (span.value === "custom") {
      changes.since = fromLocalInput(from.value) || params().since || "24h";
      changes.until = fromLocalInput(to.value);
    }
    setParams(changes);
  });
  for (const input of Object.values(inputs)) input.addEventListener("change", () => form.requestSubmit());
  toNow.addEventListener("click", () => {
    const since = params().since || "24h";
    setParams({ since: durationS(since) !== null ? since : "24h", until: null, offset: null });
  });
}

/** Offer these values in a filter's suggestion list. */
export function suggest(name, values) {
  const list = document.getElementById(`${name}-list`);
  if (!list) return;
  const have = new Set([...list.options].map((o) => o.value));
  for (const v of values) {
    if (v && !have.has(v)) {
      list.append(h("option", { value: v }));
      have.add(v);
    }
  }
}

// ---- page chrome -----------------------------------------------------------------------------------------

/** Nav links keep the window. */
function updateLinks() {
  for (const a of document.querySelectorAll("a[data-page]")) a.setAttribute("href", pageUrl(a.dataset.page));
}

/** Point the footer's "JSON" link at the read API answer the page shows (its JSON twin). */
export function jsonTwin(name, query) {
  const a = $("#json-twin");
  if (a) a.setAttribute("href", apiUrl(name, query));
}

async function status(signal) {
  const el = $("#status-line");
  if (!el) return;
  try {
    const { data: s } = await api("status", {}, signal);
    const bits = [s.recorder_alive ? "recorder running" : "recorder down"];
    if (s.store_reachable === false) bits.push("store unreachable");
    if (s.calls_written !== undefined) bits.push(`${fmt.count(s.calls_written)} calls recorded since start`);
    if (s.spool_lag_bytes) bits.push(`spool lag ${fmt.bytes(s.spool_lag_bytes)}`);
    if (s.dead_letters) bits.push(`${fmt.count(s.dead_letters)} dead letters`);
    if (s.last_write_at) bits.push(`last write ${fmt.time(new Date(s.last_write_at * 1000).toISOString())}`);
    el.textContent = bits.join(" · ");
    el.className = s.recorder_alive && s.store_reachable !== false ? "ok" : "bad";
  } catch (e) {
    if (e.name === "AbortError") return;
    el.textContent = e instanceof ApiError && e.status ? `status: ${e.message}` : "toolwatch not answering";
    el.className = "bad";
  }
}

const MANY_ALERTS = 100;

/** The number of open alerts on the nav's Alerts link; quiet when each is acknowledged or silenced. */
async function alertCount(signal) {
  const link = document.querySelector('nav a[data-page="alerts"]');
  if (!link) return;
  let count = link.querySelector(".count");
  if (!count) link.append(" ", (count = h("span", { class: "count", hidden: true })));
  let open;
  try {
    ({ data: open } = await api("alerts", { open: 1, last: MANY_ALERTS }, signal));
  } catch (e) {
    if (e.name === "AbortError") throw e;
    count.hidden = true; // an older toolwatch, or the store is down: the status line says so
    return;
  }
  const n = open.length;
  count.hidden = n === 0;
  count.textContent = n >= MANY_ALERTS ? `${MANY_ALERTS}+` : String(n);
  count.classList.toggle("quiet", open.every((a) => a.acknowledged_at || a.silenced_until));
  link.title = `${n >= MANY_ALERTS ? "at least " : ""}${n} open alert${n === 1 ? "" : "s"}`;
}

/**
 * Start a page: nav links, the status line and the count of open alerts (their own slower polls) and the
 * live `load` of its figures. A change of the parameters loads again at once, unless only `view`
 * parameters changed (how the figures are shown, not which): then `redraw()` shows the figures already
 * loaded. Returns `refresh()` (see `live`).
 */
export function startPage(load, { view = [], redraw = null } = {}) {
  updateLinks();
  onParams(updateLinks);
  live(status, 2 * POLL_MS, { owner: false });
  live(alertCount, 2 * POLL_MS, { owner: false });
  const refresh = live(load);
  let before = params();
  onParams((now) => {
    const keys = new Set([...Object.keys(before), ...Object.keys(now)]);
    const changed = [...keys].filter((k) => before[k] !== now[k]);
    before = now;
    if (redraw && changed.every((k) => view.includes(k))) redraw();
    else refresh();
  });
  return refresh;
}

// ---- model colours and labels ----------------------------------------------------------------------------

// Tableau 10: told apart easily, readable on light and dark backgrounds
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f"];
const assigned = new Map();

/** A model's colour, the same on every chart and table of the page: the next free one in the order the
 *  models are first seen (`colorsFor` sees a sorted list first, so arrival order does not matter). */
export function colorOf(model) {
  if (!assigned.has(model)) assigned.set(model, PALETTE[assigned.size % PALETTE.length]);
  return assigned.get(model);
}

export function colorsFor(models) {
  for (const m of [...models].sort()) colorOf(m);
}

/** A little square in a model's colour. */
export function swatch(model) {
  const el = h("span", { class: "swatch", "aria-hidden": "true" });
  el.style.background = colorOf(model);
  return el;
}

/** A small label for a state (ok, error, failed, ...): its class gives the colour. */
export function badge(text, kind = text) {
  return h("span", { class: `badge b-${String(kind).replace(/[^a-z_]/gi, "")}` }, text);
}

/** Outcomes that are bad news. */
export const BAD = new Set(["failed", "abandoned", "error", "missing", "upstream_error", "http_error"]);
