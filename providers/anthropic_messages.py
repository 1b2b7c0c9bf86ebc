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

from dataclasses import dataclass, field
from typing import Any

from toolwatch.providers._wire import (
    as_dict,
    as_int,
    as_list,
    as_str,
    compact_json,
    content_text,
    error_fields,
    snippet,
)
from toolwatch.providers.accumulate import Accumulator, BufferedJSONParser, RequestFields, SSEEventParser
from toolwatch.providers.base import ParsedRequest, ParsedResponse, ToolCallOut, ToolResultIn, Usage

__all__ = ["MessagesParser", "MessagesStreamParser", "parse_request", "parse_usage"]


def parse_request(body: bytes) -> ParsedRequest:
    """Read what a Messages request declares and resends; never raises."""
    req = RequestFields.load(body)
    if isinstance(req, ParsedRequest):
        return req
    for item in as_list(req.body.get("tools")):
        tool = as_dict(item) or {}
        # server tools (web_search, bash, ...) have no input_schema
        req.declare(item, as_str(tool.get("name")), tool.get("input_schema"))
    system = req.body.get("system")
    if system is not None and not isinstance(system, str | list):
        req.problems.append("system is neither a string nor a list of blocks")
    req.system.append(content_text(system, "\n"))
    messages = req.turns("messages")
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
                    req.problems.append("tool_result without tool_use_id")
                    continue
                flag = block.get("is_error")
                is_error = flag if isinstance(flag, bool) else None
                req.results.append(ToolResultIn(call_id, content_text(block.get("content")), is_error))
            elif role == "assistant" and kind == "tool_use" and (call_id := as_str(block.get("id"))):
                ids.append(call_id)
        if role == "user" and req.first_user is None:
            req.first_user = content_text(msg.get("content"), "\n")
        elif role == "assistant":
            req.prior += ids
            if req.reply_text is None:
                req.reply_text, req.reply_ids = content_text(msg.get("content"), "\n"), tuple(ids)
    return req.result(len(messages))


def parse_usage(value: object, base: Usage | None = None) -> Usage | None:
    """Normalise a ``usage`` object (see the module docstring); fields it lacks are kept from ``base``."""
    usage = as_dict(value)
    if usage is None:
        return base
    base = base or Usage()
    uncached = as_int(usage.get("input_tokens"))
    read = as_int(usage.get("cache_read_input_tokens"))
    write = as_int(usage.get("cache_creation_input_tokens"))
    output = as_int(usage.get("output_tokens"))
    return Usage(
        base.input_uncached if uncached is None else uncached,
        base.cache_read if read is None else read,
        base.cache_write if write is None else write,
        base.output if output is None else output,
    )


class MessagesParser(BufferedJSONParser):
    """Non-streamed response: buffers the body; ``finish`` parses it (a JSON object is ``complete``)."""

    def parse(self, resp: dict[str, Any]) -> ParsedResponse:
        acc = Accumulator("\n", model=as_str(resp.get("model")), response_id=as_str(resp.get("id")))
        acc.error = error_fields(resp)
        if acc.error is None and resp.get("type", "message") != "message":
            acc.note(f"unexpected response type {snippet(str(resp.get('type')))}")
        for item in as_list(resp.get("content")):
            block = as_dict(item) or {}
            kind = block.get("type")
            if kind == "text":
                acc.text.append(as_str(block.get("text")) or "")
            elif kind == "tool_use":
                name = as_str(block.get("name"))
                if name is None:
                    acc.note(f"tool_use block {len(acc.calls)} has no name")
                args = compact_json(block["input"]) if "input" in block else ""
                acc.calls.append(ToolCallOut(len(acc.calls), as_str(block.get("id")) or "", name or "", args))
            else:
                acc.skipped += 1
        acc.finish_reason = as_str(resp.get("stop_reason"))
        acc.usage = parse_usage(resp.get("usage")) or Usage()
        return acc.result(complete=True)


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
        super().__init__()
        self._blocks: dict[int, _Block] = {}
        self._calls: list[_Block] = []
        self._done = False

    def _close(self) -> bool:
        for block in self._calls:
            if not block.stopped:
                self._acc.note(f"tool call {block.ordinal} has no content_block_stop")
        if not self._done:
            self._acc.note("stream ended before message_stop")
        self._acc.calls = [block.call() for block in self._calls]
        return self._done

    def _event(self, name: str, data: str, done: list[ToolCallOut]) -> None:
        acc = self._acc
        if self._done:
            acc.skipped += 1
            return
        obj, problem = self._loads(data)
        event = as_dict(obj)
        if event is None:
            acc.note(f"{name} event data is not a JSON object ({problem}): {snippet(data)}")
            return
        kind = as_str(event.get("type")) or name
        if kind == "message_start":
            message = as_dict(event.get("message")) or {}
            acc.model = as_str(message.get("model"))
            acc.response_id = as_str(message.get("id"))
            acc.usage = parse_usage(message.get("usage"), acc.usage) or acc.usage
        elif kind in ("content_block_start", "content_block_delta", "content_block_stop"):
            self._block_event(kind, event, done)
        elif kind == "message_delta":
            delta = as_dict(event.get("delta")) or {}
            acc.finish_reason = as_str(delta.get("stop_reason")) or acc.finish_reason
            acc.usage = parse_usage(event.get("usage"), acc.usage) or acc.usage
        elif kind == "message_stop":
            self._done = True
        elif kind == "error":
            acc.error = error_fields(event) or (None, None)
        elif kind != "ping":
            acc.skipped += 1

    def _block_event(self, kind: str, event: dict[str, Any], done: list[ToolCallOut]) -> None:
        index = as_int(event.get("index"))
        if index is None:
            self._acc.note(f"{kind} without an index")
            return
        block = self._blocks.get(index)
        if kind == "content_block_start":
            if block is not None:
                self._acc.note(f"content block {index} started twice")
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
                if self._acc.text:  # blocks are joined by "\n", as the request fields join them
                    self._acc.text.append("\n")
                self._acc.text.append(as_str(start.get("text")) or "")
            else:
                self._acc.skipped += 1
            return
        if block is None:
            self._acc.note(f"{kind} for content block {index}, which never started")
            return
        if kind == "content_block_stop":
            if block.kind == "tool_use" and not block.stopped:
                done.append(block.call())
            block.stopped = True
            return
        delta = as_dict(event.get("delta")) or {}
        delta_kind = delta.get("type")
        if block.stopped:
            self._acc.note(f"delta for content block {index} after its content_block_stop")
        if block.kind == "text" and delta_kind == "text_delta":
            self._acc.text.append(as_str(delta.get("text")) or "")
        elif block.kind == "tool_use" and delta_kind == "input_json_delta":
            block.parts.append(as_str(delta.get("partial_json")) or "")
        elif block.kind in ("text", "tool_use"):
            self._acc.skipped += 1  # e.g. citations_delta; deltas of skipped blocks are not counted again
