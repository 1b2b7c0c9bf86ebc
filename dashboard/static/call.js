// Call: one LLM call's request and response bodies as stored (redacted), pretty-printed when they are
// JSON or server-sent events, next to the tool calls and tool results toolwatch parsed from them.

import {
  $,
  DASH,
  InputError,
  api,
  badge,
  fill,
  fmt,
  h,
  jsonTwin,
  pageUrl,
  params,
  sameAsBefore,
  startPage,
  timeEl,
} from "./app.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An SSE event with its JSON data indented (unchanged when the data is not JSON). */
function prettyEvent(event) {
  const lines = event.split(/\r?\n/);
  const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, ""));
  if (!data.length) return event;
  try {
    const pretty = JSON.stringify(JSON.parse(data.join("\n")), null, 2);
    return [...lines.filter((l) => !l.startsWith("data:")), `data: ${pretty}`].join("\n");
  } catch {
    return event;
  }
}

/** A body as readable text: JSON indented, SSE with each event's JSON data indented, else unchanged. */
export function prettyBody(text) {
  if (!text) return { kind: "empty", text: "" };
  try {
    return { kind: "JSON", text: JSON.stringify(JSON.parse(text), null, 2) };
  } catch {
    // not one JSON document
  }
  if (/^(data|event):/m.test(text)) {
    const events = text.split(/\r?\n\r?\n/).filter((e) => e.trim());
    return { kind: "server-sent events", text: events.map(prettyEvent).join("\n\n") };
  }
  return { kind: "text", text };
}

function body(title, text, hasBody) {
  if (!hasBody) {
    const why = "Not stored: bodies are kept for a shorter time than calls, or not at all.";
    return h("section", {}, h("h2", {}, title), h("p", { class: "empty" }, why));
  }
  const { kind, text: shown } = prettyBody(text);
  const size = fmt.bytes(new TextEncoder().encode(text || "").length);
  return h(
    "section",
    {},
    h("h2", {}, title, " ", h("small", {}, `${kind}, ${size} as stored`)),
    h("pre", { class: "body" }, shown || "(empty)")
  );
}

function kv(pairs) {
  const shown = pairs.filter(([, v]) => v !== undefined);
  return h(
    "dl",
    { class: "kv" },
    shown.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v === null || v === "" ? DASH : v)])
  );
}

function toolCalls(c) {
  if (!c.tool_calls.length) return h("p", { class: "empty" }, "No tool calls in this response.");
  return c.tool_calls.map((tc) => {
    const parsed = typeof tc.arguments === "string" ? tc.arguments : JSON.stringify(tc.arguments);
    return h(
      "div",
      { class: "tool-call", "data-name": tc.name },
      h(
        "div",
        { class: "head" },
        h("span", { class: "name" }, tc.name || "(no name)"),
        tc.malformed_kind ? badge(`malformed: ${tc.malformed_kind}`, "malformed") : badge("well-formed", "ok"),
        h("span", { class: "label-s mono" }, `#${tc.call_index} ${tc.tool_call_id}`)
      ),
      tc.malformed_detail ? h("p", { class: "label-s" }, tc.malformed_detail) : null,
      h("div", { class: "label-s" }, "raw arguments"),
      h("pre", {}, tc.raw_arguments || "(empty)"),
      tc.arguments === null || tc.arguments === undefined || tc.arguments === ""
        ? null
        : [h("div", { class: "label-s" }, "parsed arguments"), h("pre", {}, prettyBody(parsed).text)]
    );
  });
}

function toolResults(c) {
  if (!c.tool_results.length) return h("p", { class: "empty" }, "No tool results sent with this request.");
  return c.tool_results.map((r) => {
    const bad = r.is_error || r.error_rule;
    return h(
      "div",
      { class: "tool-call", "data-result": r.tool_call_id },
      h(
        "div",
        { class: "head" },
        h("span", { class: "mono" }, r.tool_call_id),
        bad ? badge("error") : badge("ok"),
        r.error_rule ? h("span", { class: "label-s" }, "rule ", h("code", {}, r.error_rule)) : null,
        h("span", { class: "label-s" }, fmt.bytes(r.content_bytes), r.truncated ? ", truncated" : "")
      ),
      h("pre", { class: bad ? "result error" : "result" }, r.content || "(empty)")
    );
  });
}

// the columns worth reading first; the rest are behind "every other column"
const MAIN = [
  ...["ts", "upstream", "api", "endpoint", "method", "path", "model_requested", "model_returned"],
  ...["status", "outcome", "error", "parse_status", "parse_error", "finish_reason", "stream"],
  ...["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "latency_ms", "ttfb_ms"],
  ...["session_id", "agent", "user_id", "properties", "declared_tools"],
];
const SHOWN_ELSEWHERE = ["request_body", "response_body", "tool_calls", "tool_results", "has_body", "call_id", "model"];
const SKIP = new Set([...MAIN, ...SHOWN_ELSEWHERE, "tool_schemas"]);

function value(c, k) {
  const v = c[k];
  if (v === undefined || v === null) return v;
  if (k === "ts") return timeEl(v, "datetime");
  if (k === "session_id" && v) return h("a", { href: pageUrl("session", { session: v }) }, v);
  if (k === "latency_ms" || k === "ttfb_ms") return `${fmt.ms(v)} ms`;
  if (k === "status") return badge(String(v), v >= 400 ? "error" : "ok");
  if (k === "outcome") return badge(v, v === "ok" ? "ok" : "error");
  if (Array.isArray(v)) return v.join(", ");
  if (typeof v === "object") {
    return Object.entries(v)
      .map(([a, b]) => `${a}=${b}`)
      .join(", ");
  }
  return typeof v === "number" ? fmt.count(v) : String(v);
}

function render(c) {
  const rest = Object.keys(c).filter((k) => !SKIP.has(k));
  const bodies = [body("Request", c.request_body, c.has_body), body("Response", c.response_body, c.has_body)];
  const side = [
    h("section", {}, h("h2", {}, "Tool calls ", h("small", {}, "parsed from the response")), toolCalls(c)),
    h("section", {}, h("h2", {}, "Tool results ", h("small", {}, "sent with the request")), toolResults(c)),
    h("section", {}, h("h2", {}, "Call"), kv(MAIN.map((k) => [k, value(c, k)]))),
    h("details", { "data-key": "rest" }, h("summary", {}, "every other column"), kv(rest.map((k) => [k, value(c, k)]))),
  ];
  fill($("#call"), h("div", { class: "call-grid" }, h("div", {}, bodies), h("div", { class: "call-side" }, side)));
  $("#call").setAttribute("data-loaded", "");
}

const same = sameAsBefore();

async function load(signal) {
  const id = params().id || "";
  $("#call-id").textContent = id || DASH;
  if (!id) {
    fill($("#call"), h("p", { class: "empty" }, "No call given: open one from a session's timeline."));
    return;
  }
  if (!UUID.test(id)) throw new InputError("That is not a call id (a UUID).");
  jsonTwin("call", { id });
  const { data, text } = await api("call", { id }, signal);
  if (!same("call", text)) render(data);
}

startPage(load);
