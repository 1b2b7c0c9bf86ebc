"""OpenAI Responses API (``POST .../responses``): request and response parsers.

Tool calls are ``function_call`` output items (and ``custom_tool_call`` items of free-form tools, whose
``input`` text is their raw arguments). Their ``call_id`` (``call_...``) is the tool-call id, since it is
what a ``function_call_output`` input item answers; the item's own ``id`` (``fc_...``) is not kept.
``ToolCallOut.index`` is the call's position among the response's tool calls.

``finish_reason``: the API has none, so it is ``incomplete_details.reason`` for an incomplete response
(``max_output_tokens``, ``content_filter``) and otherwise the response ``status`` (``completed``,
``failed``, ...). Usage: ``input_tokens`` includes ``input_tokens_details.cached_tokens`` (and
``cache_write_tokens`` where reported), so ``input_uncached`` is what is left after both.

``reasoning`` items, and output items of hosted tools (web search, file search, MCP, ...), are counted in
``skipped``, as Anthropic thinking blocks are; they are neither required nor recorded. ``text`` is the
``output_text`` parts of the assistant messages, parts and messages joined with "\n", as the request's
``first_reply_text`` joins them.

A request with ``previous_response_id`` carries only the turn's new items: the conversation's opening
lives upstream, so ``system_text``, ``first_user_text`` and ``first_reply_*`` stay empty and
``previous_response_id`` is the link to the earlier call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolwatch.providers._wire import as_dict, as_int, as_list, as_str, compact_json, error_fields, snippet
from toolwatch.providers.accumulate import Accumulator, BufferedJSONParser, RequestFields, SSEEventParser
from toolwatch.providers.base import ParsedRequest, ParsedResponse, ToolCallOut, ToolResultIn, Usage

__all__ = ["ResponsesParser", "ResponsesStreamParser", "parse_request", "parse_usage"]

CALL_ITEMS = frozenset({"function_call", "custom_tool_call"})
RESULT_ITEMS = frozenset({"function_call_output", "custom_tool_call_output"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
# events that carry nothing recorded beyond what the item and terminal events give
_QUIET_EVENTS = frozenset(
    {
        "response.created",
        "response.in_progress",
        "response.queued",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_text.done",
        "response.output_text.annotation.added",
        "response.refusal.delta",
        "response.refusal.done",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
    }
)


def parts_text(content: object, sep: str = "\n") -> str:
    """Message content as text: a string as is, or its text parts (``input_text``, ``output_text``)."""
    if isinstance(content, str):
        return content
    parts = (as_dict(p) or {} for p in as_list(content))
    return sep.join(as_str(p.get("text")) or "" for p in parts if as_str(p.get("type")) in _TEXT_PARTS)


def _output_text(value: object) -> str:
    """A tool output as text: a string, text parts, or other JSON as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return parts_text(value, "")
    return "" if value is None else compact_json(value)


def _item_kind(item: dict[str, Any]) -> str | None:
    kind = as_str(item.get("type"))
    return kind if kind is not None else ("message" if "role" in item else None)


def parse_request(body: bytes) -> ParsedRequest:
    """Read what a Responses request declares and resends; never raises."""
    req = RequestFields.load(body)
    if isinstance(req, ParsedRequest):
        return req
    for item in as_list(req.body.get("tools")):
        tool = as_dict(item) or {}
        kind = as_str(tool.get("type"))
        # hosted tools (web_search, file_search, mcp, ...) have no name: they are declared by their type
        name = as_str(tool.get("name")) if kind in ("function", "custom", None) else kind
        req.declare(item, name, tool.get("parameters") if kind == "function" else None)

    raw_input = req.body.get("input")
    items: list[Any]
    if isinstance(raw_input, str):
        items = [{"type": "message", "role": "user", "content": raw_input}]
    elif isinstance(raw_input, list):
        items = raw_input
    else:
        items = []
        if raw_input is not None:
            req.problems.append("input is neither a string nor a list of items")

    if instructions := as_str(req.body.get("instructions")):
        req.system.append(instructions)
    reply: list[str] | None = None  # the first run of assistant items after the first user message
    reply_ids: list[str] = []
    reply_open = False
    for entry in items:
        item = as_dict(entry) or {}
        kind = _item_kind(item)
        role = item.get("role")
        call_id: str | None = None
        assistant = (kind == "message" and role == "assistant") or kind in CALL_ITEMS
        if kind == "message" and role in ("system", "developer") and req.first_user is None and reply is None:
            req.system.append(parts_text(item.get("content")))
        elif kind == "message" and role == "user" and req.first_user is None:
            req.first_user = parts_text(item.get("content"))
        if kind in CALL_ITEMS:
            call_id = as_str(item.get("call_id"))
            if call_id is None:
                req.problems.append(f"{kind} item without call_id")
            else:
                req.prior.append(call_id)
        elif kind in RESULT_ITEMS:
            call_id = as_str(item.get("call_id"))
            if call_id is None:
                req.problems.append(f"{kind} item without call_id")
            else:
                req.results.append(ToolResultIn(call_id, _output_text(item.get("output"))))
        if assistant and req.first_user is not None and (reply is None or reply_open):
            if reply is None:
                reply, reply_open = [], True
            if kind == "message":
                reply.append(parts_text(item.get("content")))
            elif call_id is not None:
                reply_ids.append(call_id)
        elif kind != "reasoning":  # reasoning items sit inside a run of assistant items
            reply_open = False
    if reply is not None:
        req.reply_text, req.reply_ids = "\n".join(reply), tuple(reply_ids)
    return req.result(len(items), previous_response_id=as_str(req.body.get("previous_response_id")))


def parse_usage(value: object) -> Usage | None:
    """Normalise a Responses ``usage`` object (see the module docstring); None if there is none."""
    usage = as_dict(value)
    if usage is None:
        return None
    total = as_int(usage.get("input_tokens"))
    details = as_dict(usage.get("input_tokens_details")) or {}
    cached, written = as_int(details.get("cached_tokens")), as_int(details.get("cache_write_tokens"))
    uncached = total - (cached or 0) - (written or 0) if total is not None else None
    output = as_int(usage.get("output_tokens"))
    return Usage(input_uncached=uncached, cache_read=cached, cache_write=written, output=output)


def _call_of(item: dict[str, Any], index: int) -> ToolCallOut:
    raw = item.get("arguments") if item.get("type") == "function_call" else item.get("input")
    return ToolCallOut(index, as_str(item.get("call_id")) or "", as_str(item.get("name")) or "", as_str(raw) or "")


def _finish_reason(resp: dict[str, Any]) -> str | None:
    status = as_str(resp.get("status"))
    reason = as_str((as_dict(resp.get("incomplete_details")) or {}).get("reason"))
    return reason or status


def _read_output(items: list[Any], acc: Accumulator) -> None:
    """The tool calls, message text and skipped items of a response object's ``output`` list."""
    for entry in items:
        item = as_dict(entry) or {}
        kind = as_str(item.get("type"))
        if kind == "message":
            acc.text.append(parts_text(item.get("content")))
        elif kind in CALL_ITEMS:
            call = _call_of(item, len(acc.calls))
            if not call.name:
                acc.note(f"tool call {call.index} has no name")
            acc.calls.append(call)
        else:
            acc.skipped += 1


class ResponsesParser(BufferedJSONParser):
    """Non-streamed response: buffers the body; ``finish`` parses it (a JSON object is ``complete``)."""

    def parse(self, resp: dict[str, Any]) -> ParsedResponse:
        acc = Accumulator("\n", model=as_str(resp.get("model")), response_id=as_str(resp.get("id")))
        acc.error = error_fields(resp)
        _read_output(as_list(resp.get("output")), acc)
        if "output" not in resp and acc.error is None:
            acc.note("response has no output")
        acc.finish_reason = _finish_reason(resp) if acc.error is None or "status" in resp else None
        acc.usage = parse_usage(resp.get("usage")) or Usage()
        return acc.result(complete=True)


@dataclass
class _Item:
    kind: str
    ordinal: int = -1  # position among tool calls; -1 for other items
    call_id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)  # argument (or custom input) deltas
    final: str | None = None  # the complete argument text from a ``.done`` event or the done item
    text: dict[int, list[str]] = field(default_factory=dict)  # message text deltas by content index
    done: bool = False

    def call(self) -> ToolCallOut:
        raw = "".join(self.parts) if self.parts else (self.final or "")
        return ToolCallOut(self.ordinal, self.call_id, self.name, raw)


class ResponsesStreamParser(SSEEventParser):
    """Streamed response (typed SSE events). ``feed`` reports a tool call at its ``output_item.done``;
    ``complete`` means ``response.completed``, ``response.incomplete`` or ``response.failed`` arrived.

    Argument deltas are concatenated exactly as sent; when none arrived, the ``.done`` text is used.
    Events are told apart by their JSON ``type`` (as the SDK does); unknown ones are counted in ``skipped``.
    """

    def __init__(self) -> None:
        super().__init__("\n")
        self._items: dict[int, _Item] = {}
        self._calls: list[_Item] = []
        self._final: dict[str, Any] | None = None

    def _close(self) -> bool:
        acc, final = self._acc, self._final or {}
        if not self._items and self._final is not None:  # a terminal event only: read its output
            found = Accumulator()  # its calls, text and skipped items (a nameless call is not noted here)
            _read_output(as_list(final.get("output")), found)
            acc.calls, acc.text, acc.skipped = found.calls, found.text, acc.skipped + found.skipped
        else:
            acc.calls = [item.call() for item in self._calls]
            acc.text = [self._text(item) for _, item in sorted(self._items.items()) if item.kind == "message"]
            acc.errors += [f"tool call {i.ordinal} has no output_item.done" for i in self._calls if not i.done]
        if self._final is None:
            acc.note("stream ended before response.completed")
        acc.error = acc.error or error_fields(final)
        acc.model = as_str(final.get("model")) or acc.model
        acc.response_id = as_str(final.get("id")) or acc.response_id
        acc.finish_reason = _finish_reason(final)
        acc.usage = parse_usage(final.get("usage")) or Usage()
        return self._final is not None

    @staticmethod
    def _text(item: _Item) -> str:
        return "\n".join("".join(parts) for _, parts in sorted(item.text.items()))

    def _event(self, name: str, data: str, done: list[ToolCallOut]) -> None:
        acc = self._acc
        if self._final is not None:
            acc.skipped += 1
            return
        obj, problem = self._loads(data)
        event = as_dict(obj)
        if event is None:
            acc.note(f"{name} event data is not a JSON object ({problem}): {snippet(data)}")
            return
        kind = as_str(event.get("type")) or name
        response = as_dict(event.get("response"))
        if response is not None and kind.startswith("response."):
            acc.model = acc.model or as_str(response.get("model"))
            acc.response_id = acc.response_id or as_str(response.get("id"))
        if kind in TERMINAL_EVENTS:
            self._final = response or {}
        elif kind == "error":
            acc.error = error_fields(event) or (as_str(event.get("code")), as_str(event.get("message")))
        elif kind in ("response.output_item.added", "response.output_item.done"):
            self._item_event(kind.endswith(".done"), event, done)
        elif kind.endswith(("_call_arguments.delta", "_call_input.delta", "output_text.delta")):
            self._delta(kind, event)
        elif kind.endswith(("_call_arguments.done", "_call_input.done")):
            item = self._items.get(as_int(event.get("output_index")) or 0)
            text = as_str(event.get("arguments")) if "arguments" in event else as_str(event.get("input"))
            if item is not None and item.ordinal >= 0 and text is not None:
                item.final = text
            elif kind.startswith(("response.function_call", "response.custom_tool_call")):
                acc.note(f"{kind} for an output item that is not a tool call")
            else:
                acc.skipped += 1  # e.g. MCP call arguments: a hosted tool
        elif kind not in _QUIET_EVENTS:
            acc.skipped += 1

    def _item_event(self, is_done: bool, event: dict[str, Any], done: list[ToolCallOut]) -> None:
        index = as_int(event.get("output_index"))
        data = as_dict(event.get("item"))
        if index is None or data is None:
            self._acc.note("output item event without output_index or item")
            return
        item = self._items.get(index)
        if item is None:
            item = self._items[index] = _Item(as_str(data.get("type")) or "")
            if item.kind in CALL_ITEMS:
                item.ordinal = len(self._calls)
                self._calls.append(item)
            elif item.kind != "message":
                self._acc.skipped += 1
        if item.ordinal < 0:
            if is_done and item.kind == "message" and not item.text:  # no deltas: take the done item's text
                item.text = {0: [parts_text(data.get("content"))]}
            item.done = item.done or is_done
            return
        item.call_id = item.call_id or as_str(data.get("call_id")) or ""
        item.name = item.name or as_str(data.get("name")) or ""
        raw = data.get("arguments") if item.kind == "function_call" else data.get("input")
        if is_done and isinstance(raw, str):
            if item.parts and "".join(item.parts) != raw:
                self._acc.note(f"tool call {item.ordinal}: argument deltas differ from the done item")
            item.final = raw
        if is_done and not item.done:
            item.done = True
            done.append(item.call())

    def _delta(self, kind: str, event: dict[str, Any]) -> None:
        index = as_int(event.get("output_index"))
        item = self._items.get(index) if index is not None else None
        delta = as_str(event.get("delta"))
        if item is None or delta is None:
            self._acc.note(f"{kind} for an output item that never started")
            return
        if kind == "response.output_text.delta" and item.kind == "message":
            item.text.setdefault(as_int(event.get("content_index")) or 0, []).append(delta)
        elif item.ordinal >= 0 and not kind.endswith("output_text.delta"):
            if item.done:
                self._acc.note(f"delta for tool call {item.ordinal} after its output_item.done")
            item.parts.append(delta)
        else:
            self._acc.skipped += 1
