// Alerts: regression and threshold alerts, newest first, with what backs each one (figures, interval,
// sample sizes, example sessions) and the writes a person makes on them: acknowledge, silence, unsilence.
// The filters live in the URL; the list refreshes live, and at once after a write.

import {
  $,
  ActionError,
  ApiError,
  InputError,
  actionNotice,
  api,
  badge,
  colorsFor,
  durationS,
  fill,
  fmt,
  h,
  jsonTwin,
  onParams,
  params,
  post,
  sameAsBefore,
  setParams,
  startPage,
  suggest,
  swatch,
  timeEl,
} from "./app.js";
import { ALERT_KINDS, alertModels, evidenceText, kindLabel, valuesText } from "./alertinfo.js";

const SINCE = [
  ["24h", "24 h"],
  ["7d", "7 d"],
  ["30d", "30 d"],
];
const DEFAULT_SINCE = "7d";
const SILENCE_FOR = [
  ["1h", "1 h"],
  ["24h", "24 h"],
];
const LAST = 200;
const NAME_KEY = "toolwatch.name"; // who acknowledges and silences, remembered by the browser

// ---- filters ---------------------------------------------------------------------------------------------

function filters() {
  const open = h("input", { type: "checkbox", name: "open" });
  const agent = h("input", { type: "search", name: "agent", placeholder: "agent", list: "agent-list", size: 14 });
  const kind = h(
    "select",
    { name: "kind", "aria-label": "kind" },
    h("option", { value: "" }, "any kind"),
    ALERT_KINDS.map((k) => h("option", { value: k }, kindLabel(k)))
  );
  const since = h(
    "select",
    { name: "since", "aria-label": "resolved alerts updated within" },
    SINCE.map(([v, label]) => h("option", { value: v }, `resolved within ${label}`))
  );
  const who = h("input", { type: "text", name: "who", placeholder: "your name", size: 12, autocomplete: "name" });
  who.value = localStorage.getItem(NAME_KEY) || "";
  who.addEventListener("change", () => localStorage.setItem(NAME_KEY, who.value.trim()));
  const form = $("#filters");
  form.replaceChildren(
    h("label", { class: "filter" }, open, " open only"),
    h("label", { class: "filter" }, h("span", { class: "sr" }, "agent"), agent, h("datalist", { id: "agent-list" })),
    h("label", { class: "filter" }, h("span", { class: "sr" }, "kind"), kind),
    h("label", { class: "filter" }, h("span", { class: "sr" }, "since"), since),
    h("button", { type: "submit" }, "Apply"),
    h("label", { class: "filter who", title: "recorded with an acknowledgement or a silence" }, "acting as ", who)
  );

  const preset = since.options.length;
  function show(p) {
    open.checked = Boolean(p.open);
    agent.value = p.agent || "";
    kind.value = ALERT_KINDS.includes(p.kind) ? p.kind : "";
    // another page's window (a custom one, or 15 min) shows as it is
    while (since.options.length > preset) since.lastChild.remove();
    if (p.since && !SINCE.some(([v]) => v === p.since)) {
      const label = durationS(p.since) === null ? `since ${fmt.short(p.since)}` : `within ${p.since}`;
      since.append(h("option", { value: p.since }, `resolved ${label}`));
    }
    since.value = p.since || DEFAULT_SINCE;
  }
  show(params());
  onParams(show);
  const apply = () =>
    setParams({
      open: open.checked ? "1" : null,
      agent: agent.value.trim(),
      kind: kind.value,
      since: since.value === DEFAULT_SINCE ? null : since.value,
    });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });
  for (const input of [open, agent, kind, since]) input.addEventListener("change", apply);
  return () => who.value.trim() || "dashboard";
}

const actor = filters();

// ---- writes ----------------------------------------------------------------------------------------------

let refresh = () => {};

/** POST one write for a button; a failure stays in the notice line until the next write. */
async function act(button, label, name, query) {
  button.disabled = true;
  try {
    await post(name, query());
    actionNotice(null);
  } catch (e) {
    const fromApi = e instanceof ApiError;
    const signedOut = fromApi && (e.status === 401 || e.status === 403);
    const why = !fromApi ? e.message : e.status ? `${e.message} (HTTP ${e.status})` : "toolwatch did not answer";
    actionNotice(signedOut ? e : new ActionError(`${label} failed: ${why}`));
  } finally {
    button.disabled = false;
    refresh();
  }
}

/** A button that POSTs to `name` the query `query()` makes at the click. */
function button(label, name, query, title) {
  const el = h("button", { type: "button", class: "action", title }, label);
  el.addEventListener("click", () => act(el, label, name, query));
  return el;
}

/** The active silences that hold back this alert's notifications (as `Silence.matches` decides). */
function silencesOf(alert, silences) {
  return silences.filter((s) =>
    s.alert_id ? s.alert_id === alert.id : [alert.agent, ""].includes(s.agent) && [alert.kind, ""].includes(s.kind)
  );
}

function actions(a, silences) {
  const out = [];
  const by = () => ({ id: a.id, by: actor() });
  if (a.state === "open" && !a.acknowledged_at) {
    out.push(button("Acknowledge", "alerts/ack", by, "someone is on it (the alert stays open)"));
  }
  if (a.state === "open") {
    for (const [span, label] of SILENCE_FOR) {
      const title = `hold back this alert's notifications for ${label}`;
      out.push(button(`Silence ${label}`, "alerts/silence", () => ({ ...by(), for: span }), title));
    }
  }
  for (const s of silences) {
    const kind = s.kind ? `${kindLabel(s.kind)} ` : "";
    const scope = s.alert_id ? "this alert" : `every ${kind}alert of ${s.agent || "any agent"}`;
    const by = s.created_by ? ` by ${s.created_by}` : "";
    const title = `silenced ${scope} until ${fmt.datetime(s.until)}${by}`;
    const label = s.alert_id ? "Unsilence" : "Unsilence (agent-wide)";
    out.push(button(label, "alerts/unsilence", () => ({ id: s.id }), title));
  }
  return out;
}

// ---- the list --------------------------------------------------------------------------------------------

/** An example session's link, when the API gives an http(s) URL or a path (anything else stays text). */
function example(url, i) {
  let target = null;
  try {
    target = new URL(url, location.href);
  } catch {
    // not a URL
  }
  if (!target || !["http:", "https:"].includes(target.protocol)) return h("span", { class: "mono" }, url);
  const name = target.searchParams.get("session") || `example ${i + 1}`;
  return h("a", { href: target.href, class: "mono example" }, name);
}

function card(a, silences) {
  const open = a.state === "open";
  const models = alertModels(a).map((m, i) => [i ? " → " : "", swatch(m), h("span", { class: "model" }, m)]);
  const acked = a.acknowledged_at
    ? h(
        "span",
        { class: "badge b-acked", title: `acknowledged ${fmt.datetime(a.acknowledged_at)}` },
        `acknowledged by ${a.acknowledged_by || "someone"}`
      )
    : null;
  const silenced = a.silenced_until
    ? h(
        "span",
        { class: "badge b-silenced", title: fmt.datetime(a.silenced_until) },
        `silenced until ${fmt.short(a.silenced_until)}`
      )
    : null;
  const head = h(
    "div",
    { class: "alert-head" },
    badge(a.state, open ? "alert_open" : "ok"),
    badge(kindLabel(a.kind), "kind"),
    h("strong", { class: "agent" }, a.agent),
    h("span", { class: "models" }, models),
    acked,
    silenced
  );
  const figures = h(
    "p",
    { class: "figures" },
    h("code", { class: "metric" }, a.metric),
    " ",
    h("strong", { class: "values" }, valuesText(a)),
    " ",
    h("span", { class: "evidence" }, evidenceText(a))
  );
  const when = [
    ["opened", a.opened_at],
    ["updated", a.updated_at],
    ["resolved", a.resolved_at],
  ].filter(([, t]) => t);
  const stamp = ([label, t], i) => [i ? " · " : "", `${label} `, timeEl(t, "short")];
  const times = h("p", { class: "times" }, when.map(stamp));
  const examples = (a.examples || []).length
    ? h("p", { class: "examples" }, "example sessions: ", a.examples.map((u, i) => [i ? ", " : "", example(u, i)]))
    : null;
  const method = a.method
    ? h("details", { "data-key": `method-${a.id}` }, h("summary", {}, "method"), h("p", { class: "method" }, a.method))
    : null;
  const buttons = actions(a, silences);
  return h(
    "li",
    { class: `alert ${open ? "open" : "resolved"}`, "data-id": a.id, "data-state": a.state, "data-kind": a.kind },
    head,
    figures,
    times,
    a.detail ? h("p", { class: "detail" }, a.detail) : null,
    examples,
    method,
    buttons.length ? h("div", { class: "actions" }, buttons) : null
  );
}

function render(alerts, silences) {
  const newest = [...alerts].sort((x, y) => Date.parse(y.opened_at) - Date.parse(x.opened_at));
  colorsFor(newest.flatMap(alertModels));
  fill($("#alerts"), newest.map((a) => card(a, silencesOf(a, silences))));
  $("#alerts-empty").hidden = alerts.length > 0;
  $("#alerts").setAttribute("data-loaded", "");
}

const same = sameAsBefore();

async function load(signal) {
  const p = params();
  if (p.kind && !ALERT_KINDS.includes(p.kind)) {
    throw new InputError(`The kind "${p.kind}" is not one of ${ALERT_KINDS.join(", ")}.`);
  }
  const query = { open: p.open ? 1 : null, agent: p.agent, kind: p.kind, since: p.since || DEFAULT_SINCE, last: LAST };
  jsonTwin("alerts", query);
  const [alerts, silences] = await Promise.all([api("alerts", query, signal), api("silences", {}, signal)]);
  if (signal.aborted) return;
  suggest("agent", alerts.data.map((a) => a.agent));
  if (!same("alerts", `${alerts.text}\n${silences.text}`)) render(alerts.data, silences.data);
}

refresh = startPage(load);
