// Session: one agent run step by step: each LLM call with its tool calls, the first failure and the failed
// steps after it (the cascade) highlighted, each step linked to its call.

import {
  $,
  BAD,
  DASH,
  api,
  badge,
  colorsFor,
  durationS,
  fill,
  fmt,
  h,
  jsonTwin,
  pageUrl,
  params,
  sameAsBefore,
  startPage,
  swatch,
  timeEl,
  windowQuery,
} from "./app.js";

const WEEK_S = 7 * 86400;

/** The window to look for the session in: the page's, but never less than the API's default week, since a
 *  session listed in a short window may have started before it. */
function sessionSince(since) {
  const seconds = durationS(since);
  return !since || (seconds !== null && seconds < WEEK_S) ? "7d" : since;
}

/** JSON arguments indented; anything else (a malformed call's text) as it came. */
function prettyJson(text) {
  try {
    const value = JSON.parse(text);
    if (value !== null && typeof value === "object") return JSON.stringify(value, null, 2);
  } catch {
    // not JSON
  }
  return text;
}

function toolCall(tc) {
  const outcome = tc.outcome || "";
  const result = h("pre", { class: outcome === "error" ? "result error" : "result" }, tc.result_head);
  return h(
    "div",
    { class: "tool-call", "data-name": tc.name, "data-outcome": outcome, "data-malformed": tc.malformed_kind || null },
    h(
      "div",
      { class: "head" },
      h("span", { class: "name" }, tc.name || "(no name)"),
      badge(outcome || DASH, outcome),
      tc.malformed_kind ? badge(`malformed: ${tc.malformed_kind}`, "malformed") : null,
      tc.error_rule ? h("span", { class: "label-s" }, "error rule ", h("code", {}, tc.error_rule)) : null,
      h("span", { class: "label-s mono" }, tc.tool_call_id)
    ),
    tc.raw_arguments ? h("pre", { class: "args", "aria-label": "arguments" }, prettyJson(tc.raw_arguments)) : null,
    tc.result_head ? [h("div", { class: "label-s" }, "result (start)"), result] : null
  );
}

function step(s, i, firstFailure) {
  const cascade = s.failed && firstFailure !== null && i > firstFailure;
  const cls = ["step", s.failed && "failed", i === firstFailure && "first-failure", cascade && "cascade"];
  if (s.final_answer) cls.push("final");
  const flags = [
    i === firstFailure ? badge("first failure", "first") : null,
    cascade ? badge("failed again", "failed") : null,
    s.failed ? (s.recovered ? badge("recovered later", "recovered") : badge("never recovered", "failed")) : null,
    s.upstream_failed ? badge("upstream failed", "error") : null,
    s.final_answer ? badge("final answer", "final") : null,
  ];
  return h(
    "li",
    { class: cls.filter(Boolean).join(" "), "data-call": s.call_id, "data-failed": String(s.failed) },
    h(
      "div",
      { class: "step-head" },
      h("span", { class: "n" }, `step ${i + 1}`),
      timeEl(s.ts),
      h("span", {}, swatch(s.model), s.model || DASH),
      badge(String(s.status), s.status >= 400 ? "error" : "ok"),
      s.outcome !== "ok" ? badge(s.outcome, BAD.has(s.outcome) ? s.outcome : "warn") : null,
      h("span", { class: "meta" }, "finish: ", fmt.text(s.finish_reason)),
      flags,
      h("a", { href: pageUrl("call", { id: s.call_id }) }, "call →")
    ),
    s.tool_calls.length ? h("div", { class: "tool-calls" }, s.tool_calls.map(toolCall)) : null
  );
}

function summary(steps, info) {
  const first = steps.findIndex((s) => s.failed);
  const failed = steps.filter((s) => s.failed).length;
  const after = first < 0 ? 0 : steps.slice(first + 1).filter((s) => s.failed).length;
  const tools = steps.reduce((n, s) => n + s.tool_calls.length, 0);
  const models = [...new Set(steps.map((s) => s.model))];
  const item = (label, ...value) => h("li", {}, `${label} `, h("strong", {}, value));
  const flags = info ? [info.cascade ? [" ", badge("cascade")] : null, info.loop ? [" ", badge("loop")] : null] : [];
  return [
    info ? item("outcome", badge(info.outcome), flags) : null,
    info && info.agent ? item("agent", info.agent) : null,
    info && info.user_id ? item("user", info.user_id) : null,
    item("model", models.map((m, i) => [i ? ", " : "", swatch(m), m])),
    item("steps", fmt.count(steps.length)),
    item("tool calls", fmt.count(tools)),
    item("failed steps", fmt.count(failed)),
    first >= 0 ? item("first failure", `step ${first + 1}`, after ? `, then ${after} more failed` : "") : null,
    item("from", timeEl(steps[0].ts, "datetime"), " to ", timeEl(steps[steps.length - 1].ts)),
  ];
}

function render(steps, info) {
  colorsFor(steps.map((s) => s.model));
  const first = steps.findIndex((s) => s.failed);
  fill($("#summary"), steps.length ? summary(steps, info) : null);
  fill($("#timeline"), steps.map((s, i) => step(s, i, first < 0 ? null : first)));
  $("#timeline-empty").hidden = steps.length > 0;
  $("#timeline").setAttribute("data-loaded", "");
}

const same = sameAsBefore();

async function load(signal) {
  const p = params();
  const id = p.session || "";
  $("#session-id").textContent = id || DASH;
  if (!id) {
    $("#timeline-empty").hidden = false;
    $("#timeline-empty").textContent = "No session given: open one from the sessions list.";
    return;
  }
  document.title = `toolwatch · session ${id}`;
  const query = { session: id, since: sessionSince(windowQuery(p).since), until: p.until };
  jsonTwin("session", query);
  // the list's row for this session: its outcome, agent and user (the search matches parts of ids)
  const search = id.startsWith("h:") ? id.slice(2) : id;
  const [steps, list] = await Promise.all([
    api("session", query, signal),
    api("sessions", { since: query.since, until: p.until, search, last: 50 }, signal),
  ]);
  const info = list.data.find((r) => r.session === id || r.session === `h:${id}`) || null;
  if (!same("session", steps.text + JSON.stringify(info))) render(steps.data, info);
}

startPage(load);
