"""Anthropic Messages (``POST .../v1/messages``): request and response parsers.

Tool calls are ``tool_use`` content blocks. ``ToolCallOut.index`` is the call's position among the
response's tool calls (0, 1, ...), not its content-block index, so it means the same as OpenAI's.

``raw_arguments`` differs by transport, and says so:

- streamed, it is the ``input_json_delta.partial_json`` fragments concatenated exactly as sent. The block
  starts with ``"input": {}`` and the fragments then carry the whole input (often led by an empty
  fragment). If no non-empty fragment arrives (a tool without parameters), it is the start block's
  ``input`` as compact JSON, normally ``"{}"``, which is also what the SDK reports as the input;
- not streamed, the API sends ``input`` as an object, not text, so it is that object as compact JSON.

Usage: Anthropic's ``input_tokens`` already excludes cache reads and writes, so it is ``input_uncached``;
``cache_read``/``cache_write`` are ``cache_read_input_tokens``/``cache_creation_input_tokens``. In a
stream, ``message_delta`` usage is cumulative and overrides ``message_start`` field by field.

Content blocks other than ``text`` and ``tool_use`` (``thinking``, ``server_tool_use``, ...) are counted in
``skipped`` once per block, streamed or not. ``text`` joins text blocks with "\n", as the request's
``first_reply_text`` does, so a reply reads the same in its response and when a later request resends it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from toolwatch.providers._wire import (
    BufferedJSONParser,
    SSEEventParser,
    as_dict,
    as_int,
    as_list,
    as_str,
    compact_json,
    content_text,
    error_fields,
    load_request,
    loads,
    snippet,
)
from toolwatch.providers.base import ParsedRequest, ParsedResponse, ToolCallOut, ToolDecl, ToolResultIn, Usage
from toolwatch.providers.sse import SSEDecoder

__all__ = ["MessagesParser", "MessagesStreamParser", "parse_request", "parse_usage"]


def parse_request(body: bytes) -> ParsedRequest:
    """Read what a Messages request declares and resends; never raises."""
    req = load_request(body)
    if isinstance(req, ParsedRequest):
        return req
    problems: list[str] = []
    tools: list[ToolDecl] = []
    for item in as_list(req.get("tools")):
        tool = as_dict(item) or {}
        name = as_str(tool.get("name"))
        if name is None:
            problems.append(f"tool declaration without a name: {snippet(compact_json(item))}")
            continue
        schema = tool.get("input_schema")  # server tools (web_search, bash, ...) have none
        tools.append(ToolDecl(name, compact_json(schema) if schema is not None else None))
    system = req.get("system")
    if system is not None and not isinstance(system, str | list):
        problems.append("system is neither a string nor a list of blocks")

    results: list[ToolResultIn] = []
    prior: list[str] = []
    first_user: str | None = None
    reply_text: str | None = None  # the first assistant message, and its tool-call ids
    reply_ids: tuple[str, ...] = ()
    messages = req.get("messages")
    if not isinstance(messages, list):
        problems.append("messages is missing or not a list")
        messages = []
    for message in messages:
        msg = as_dict(message) or {}
        role = msg.get("role")
        ids: list[str] = []
        for item in as_list(msg.get("content")):  # a string content has no blocks
            block = as_dict(item) or {}
            kind = block.get("type")
            if role == "user" and kind == "tool_result":
                call_id = as_str(block.get("tool_use_id"))
                if call_id is None:
                    problems.append("tool_result without tool_use_id")
                    continue
                flag = block.get("is_error")
                is_error = flag if isinstance(flag, bool) else None
                results.append(ToolResultIn(call_id, content_text(block.get("content")), is_error))
            elif role == "assistant" and kind == "tool_use" and (call_id := as_str(block.get("id"))):
                ids.append(call_id)
        if role == "user" and first_user is None:
            first_user = content_text(msg.get("content"), "\n")
        elif role == "assistant":
            prior += ids
            if reply_text is None:
                reply_text, reply_ids = content_text(msg.get("content"), "\n"), tuple(ids)
    return ParsedRequest(
        model=as_str(req.get("model")),
        stream=req.get("stream") is True,
        tools=tuple(tools),
        tool_results=tuple(results),
        prior_tool_call_ids=tuple(prior),
        message_count=len(messages),
        error="; ".join(problems) or None,
        system_text=content_text(system, "\n"),
        first_user_text=first_user or "",
        first_reply_text=reply_text,
        first_reply_tool_ids=reply_ids,
    )


def parse_usage(value: object, base: Usage | None = None) -> Usage | None:
    """Normalise a ``usage`` object (see the module docstring); fields it lacks are kept from ``base``."""
    usage = as_dict(value)
    if usage is None:
        return base
    found = {
        "input_uncached": as_int(usage.get("input_tokens")),
        "cache_read": as_int(usage.get("cache_read_input_tokens")),
        "cache_write": as_int(usage.get("cache_creation_input_tokens")),
        "output": as_int(usage.get("output_tokens")),
    }
    return replace(base or Usage(), **{k: v for k, v in found.items() if v is not None})


class MessagesParser(BufferedJSONParser):
    """Non-streamed response: buffers the body; ``finish`` parses it (a JSON object is ``complete``)."""

    def parse(self, resp: dict[str, Any]) -> ParsedResponse:
        errors: list[str] = []
        err = error_fields(resp)
        if err is None and resp.get("type", "message") != "message":
            errors.append(f"unexpected response type {snippet(str(resp.get('type')))}")
        calls: list[ToolCallOut] = []
        text: list[str] = []
        skipped = 0
        for item in as_list(resp.get("content")):
            block = as_dict(item) or {}
            kind = block.get("type")
            if kind == "text":
                text.append(as_str(block.get("text")) or "")
            elif kind == "tool_use":
                name = as_str(block.get("name"))
                if name is None:
                    errors.append(f"tool_use block {len(calls)} has no name")
                args = compact_json(block["input"]) if "input" in block else ""
                calls.append(ToolCallOut(len(calls), as_str(block.get("id")) or "", name or "", args))
            else:
                skipped += 1
        return ParsedResponse(
            model=as_str(resp.get("model")),
            response_id=as_str(resp.get("id")),
            tool_calls=tuple(calls),
            finish_reason=as_str(resp.get("stop_reason")),
            usage=parse_usage(resp.get("usage")) or Usage(),
            text="\n".join(text),
            error_type=err[0] if err else None,
            error_message=err[1] if err else None,
            complete=True,
            errors=tuple(errors),
            skipped=skipped,
        )


@dataclass
class _Block:
    kind: str
    ordinal: int = -1  # position among tool calls; -1 for other blocks
    id: str = ""
    name: str = ""
    start_input: str = ""
    parts: list[str] = field(default_factory=list)
    stopped: bool = False

    def call(self) -> ToolCallOut:
        raw = "".join(self.parts)
        return ToolCallOut(self.ordinal, self.id, self.name, raw or self.start_input)


class MessagesStreamParser(SSEEventParser):
    """Streamed response. ``feed`` reports a tool call at its ``content_block_stop``; ``complete`` means
    ``message_stop`` arrived. Events are told apart by their JSON ``type`` (as the SDK does)."""

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._blocks: dict[int, _Block] = {}
        self._calls: list[_Block] = []
        self._text: list[str] = []
        self._model: str | None = None
        self._id: str | None = None
        self._stop_reason: str | None = None
        self._usage = Usage()
        self._error: tuple[str | None, str | None] | None = None
        self._done = False
        self._errors: list[str] = []
        self._skipped = 0

    def finish(self) -> ParsedResponse:
        self._drain()
        for block in self._calls:
            if not block.stopped:
                self._errors.append(f"tool call {block.ordinal} has no content_block_stop")
        if not self._done:
            self._errors.append("stream ended before message_stop")
        return ParsedResponse(
            model=self._model,
            response_id=self._id,
            tool_calls=tuple(block.call() for block in self._calls),
            finish_reason=self._stop_reason,
            usage=self._usage,
            text="".join(self._text),
            error_type=self._error[0] if self._error else None,
            error_message=self._error[1] if self._error else None,
            complete=self._done,
            errors=tuple(self._errors),
            skipped=self._skipped,
        )

    def _event(self, name: str, data: str, done: list[ToolCallOut]) -> None:
        if self._done:
            self._skipped += 1
            return
        obj, problem = loads(data)
        event = as_dict(obj)
        if event is None:
            self._errors.append(f"{name} event data is not a JSON object ({problem}): {snippet(data)}")
            return
        kind = as_str(event.get("type")) or name
        if kind == "message_start":
            message = as_dict(event.get("message")) or {}
            self._model = as_str(message.get("model"))
            self._id = as_str(message.get("id"))
            self._usage = parse_usage(message.get("usage"), self._usage) or self._usage
        elif kind in ("content_block_start", "content_block_delta", "content_block_stop"):
            self._block_event(kind, event, done)
        elif kind == "message_delta":
            delta = as_dict(event.get("delta")) or {}
            self._stop_reason = as_str(delta.get("stop_reason")) or self._stop_reason
            self._usage = parse_usage(event.get("usage"), self._usage) or self._usage
        elif kind == "message_stop":
            self._done = True
        elif kind == "error":
            self._error = error_fields(event) or (None, None)
        elif kind != "ping":
            self._skipped += 1

    def _block_event(self, kind: str, event: dict[str, Any], done: list[ToolCallOut]) -> None:
        index = as_int(event.get("index"))
        if index is None:
            self._errors.append(f"{kind} without an index")
            return
        block = self._blocks.get(index)
        if kind == "content_block_start":
            if block is not None:
                self._errors.append(f"content block {index} started twice")
                return
            start = as_dict(event.get("content_block")) or {}
            block = self._blocks[index] = _Block(as_str(start.get("type")) or "")
            if block.kind == "tool_use":
                block.ordinal = len(self._calls)
                block.id = as_str(start.get("id")) or ""
                block.name = as_str(start.get("name")) or ""
                start_input = start.get("input")
                block.start_input = compact_json(start_input) if start_input is not None else ""
                self._calls.append(block)
            elif block.kind == "text":
                if self._text:  # blocks are joined by "\n", as the request fields join them
                    self._text.append("\n")
                self._text.append(as_str(start.get("text")) or "")
            else:
                self._skipped += 1
            return
        if block is None:
            self._errors.append(f"{kind} for content block {index}, which never started")
            return
        if kind == "content_block_stop":
            if block.kind == "tool_use" and not block.stopped:
                done.append(block.call())
            block.stopped = True
            return
        delta = as_dict(event.get("delta")) or {}
        delta_kind = delta.get("type")
        if block.stopped:
            self._errors.append(f"delta for content block {index} after its content_block_stop")
        if block.kind == "text" and delta_kind == "text_delta":
            self._text.append(as_str(delta.get("text")) or "")
        elif block.kind == "tool_use" and delta_kind == "input_json_delta":
            block.parts.append(as_str(delta.get("partial_json")) or "")
        elif block.kind in ("text", "tool_use"):
            self._skipped += 1  # e.g. citations_delta; deltas of skipped blocks are not counted again
