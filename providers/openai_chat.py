"""OpenAI Chat Completions (``POST .../chat/completions``): request and response parsers.

Usage is normalised so that ``input_uncached`` excludes cache reads: OpenAI's ``prompt_tokens`` includes
``prompt_tokens_details.cached_tokens``, so ``input_uncached = prompt_tokens - cached_tokens`` and
``cache_read = cached_tokens``. OpenAI caches automatically and reports no cache writes, so
``cache_write`` is None ("not reported"), not 0. When a server omits ``prompt_tokens_details`` (older
models, compatible servers), ``cache_read`` is None and ``input_uncached`` is the whole ``prompt_tokens``.

Only choice 0 is recorded; a response with ``n > 1`` gets a note in ``errors``. Legacy
``function_call`` output is recorded as a tool call with index 0 and an empty id (it has none); legacy
``role: function`` messages carry no call id, so requests do not report them as tool results.
``system_text`` is the leading system/developer messages only: a system message later in the
conversation (a reminder some agents inject) would otherwise change the session's identity.
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

__all__ = ["ChatCompletionParser", "ChatCompletionStreamParser", "parse_request", "parse_usage"]


def parse_request(body: bytes) -> ParsedRequest:
    """Read what a Chat Completions request declares and resends; never raises."""
    req = RequestFields.load(body)
    if isinstance(req, ParsedRequest):
        return req
    specs = [(t, _tool_spec(t)) for t in as_list(req.body.get("tools"))]
    specs += [(f, f) for f in as_list(req.body.get("functions"))]  # the legacy form of ``tools``
    for item, found in specs:
        spec = found if isinstance(found, dict) else {}
        # custom (free-form) tools have a grammar, not a schema
        req.declare(item, as_str(spec.get("name")), spec.get("parameters"))
    messages = req.turns("messages")
    for message in messages:
        msg = as_dict(message) or {}
        role = msg.get("role")
        # the leading system/developer messages only: later ones are reminders, not the session's identity
        if role in ("system", "developer") and req.first_user is None and req.reply_text is None:
            req.system.append(content_text(msg.get("content"), "\n"))
        elif role == "user" and req.first_user is None:
            req.first_user = content_text(msg.get("content"), "\n")
        elif role == "tool":
            call_id = as_str(msg.get("tool_call_id"))
            if call_id is None:
                req.problems.append("tool message without tool_call_id")
                continue
            req.results.append(ToolResultIn(call_id, content_text(msg.get("content"))))
        elif role == "assistant":
            ids = [i for c in as_list(msg.get("tool_calls")) if (i := as_str((as_dict(c) or {}).get("id")))]
            req.prior += ids
            if req.reply_text is None:
                req.reply_text, req.reply_ids = content_text(msg.get("content"), "\n"), tuple(ids)
    return req.result(len(messages))


def _tool_spec(item: object) -> object:
    """The ``function`` (or ``custom``) object of a ``tools`` entry."""
    tool = as_dict(item) or {}
    kind = tool.get("type", "function")
    return tool.get(kind) if isinstance(kind, str) else None


def parse_usage(value: object) -> Usage | None:
    """Normalise a ``usage`` object (see the module docstring); None if there is none."""
    usage = as_dict(value)
    if usage is None:
        return None
    prompt = as_int(usage.get("prompt_tokens"))
    cached = as_int((as_dict(usage.get("prompt_tokens_details")) or {}).get("cached_tokens"))
    uncached = prompt - cached if prompt is not None and cached is not None else prompt
    return Usage(
        input_uncached=uncached,
        cache_read=cached,
        cache_write=None,
        output=as_int(usage.get("completion_tokens")),
    )


def _call_parts(call: dict[str, Any]) -> tuple[str | None, str | None]:
    """(name, argument text) of a tool call or its delta: ``function`` tools, or ``custom`` ones."""
    fn = as_dict(call.get("function")) or as_dict(call.get("custom")) or {}
    args = fn.get("arguments") if "arguments" in fn else fn.get("input")
    return as_str(fn.get("name")), as_str(args)


class ChatCompletionParser(BufferedJSONParser):
    """Non-streamed response: buffers the body; ``finish`` parses it (a JSON object is ``complete``)."""

    def parse(self, resp: dict[str, Any]) -> ParsedResponse:
        acc = Accumulator(model=as_str(resp.get("model")), response_id=as_str(resp.get("id")))
        acc.error = error_fields(resp)
        choices = as_list(resp.get("choices"))
        choice = as_dict(choices[0]) if choices else None
        if len(choices) > 1:
            acc.note(f"{len(choices)} choices: only choice 0 recorded")
        if choice is None and acc.error is None:
            acc.note("response has no choices")
        message = as_dict((choice or {}).get("message")) or {}
        for index, item in enumerate(as_list(message.get("tool_calls"))):
            call = as_dict(item) or {}
            name, args = _call_parts(call)
            if name is None:
                acc.note(f"tool call {index} has no name")
            acc.calls.append(ToolCallOut(index, as_str(call.get("id")) or "", name or "", args or ""))
        legacy = as_dict(message.get("function_call"))
        if legacy is not None and not acc.calls:
            name, args = _call_parts({"function": legacy})
            acc.calls.append(ToolCallOut(0, "", name or "", args or ""))
        acc.finish_reason = as_str((choice or {}).get("finish_reason"))
        acc.usage = parse_usage(resp.get("usage")) or Usage()
        acc.text.append(content_text(message.get("content")))
        return acc.result(complete=True)


@dataclass
class _OpenCall:
    id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)


class ChatCompletionStreamParser(SSEEventParser):
    """Streamed response (``chat.completion.chunk`` events, ``data: [DONE]`` at the end).

    Argument fragments of a tool call index are concatenated exactly as sent. ``feed`` reports a call
    when the next index starts or choice 0 gets a ``finish_reason``; fragments that arrive for a call
    already reported still go into the final result and are noted in ``errors``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._calls: dict[int, _OpenCall] = {}
        self._open: dict[int, _OpenCall] = {}  # the calls not reported yet
        self._current: int | None = None
        self._done = False

    def _close(self) -> bool:
        self._close_calls([])
        if not self._done:
            self._acc.note("stream ended before data: [DONE]")
        self._acc.calls = [self._out(i, c) for i, c in sorted(self._calls.items())]
        return self._done

    def _event(self, name: str, data: str, done: list[ToolCallOut]) -> None:
        acc = self._acc
        if self._done or name not in ("message", "error"):
            acc.skipped += 1
            return
        if data == "[DONE]":
            self._done = True
            self._close_calls(done)
            return
        obj, problem = self._loads(data)
        chunk = as_dict(obj)
        if chunk is None:
            acc.note(f"event data is not a JSON object ({problem}): {snippet(data)}")
            return
        if chunk.get("error") is not None:  # error_fields gives None for a missing or null error
            acc.error = error_fields(chunk)
            return
        if chunk.get("object", "chat.completion.chunk") != "chat.completion.chunk":
            acc.skipped += 1
            return
        # every chunk repeats model and id: read until they are known
        if not acc.model:
            acc.model = as_str(chunk.get("model"))
        if not acc.response_id:
            acc.response_id = as_str(chunk.get("id"))
        usage = chunk.get("usage")
        if isinstance(usage, dict):  # null on every chunk but the last
            acc.usage = parse_usage(usage) or acc.usage
        for item in as_list(chunk.get("choices")):
            choice = as_dict(item) or {}
            if choice.get("index", 0) != 0:
                acc.note_once("choices other than index 0 ignored")
                continue
            self._delta(as_dict(choice.get("delta")) or {}, done)
            reason = as_str(choice.get("finish_reason"))
            if reason is not None:
                acc.finish_reason = reason
                self._close_calls(done)

    def _delta(self, delta: dict[str, Any], done: list[ToolCallOut]) -> None:
        content = as_str(delta.get("content"))
        if content:
            self._acc.text.append(content)
        calls = as_list(delta.get("tool_calls"))
        legacy = as_dict(delta.get("function_call"))
        if legacy is not None and not calls:
            calls = [{"index": 0, "function": legacy}]
        for item in calls:
            call = as_dict(item)
            if call is None:
                self._acc.note(f"tool call delta is not an object: {snippet(compact_json(item))}")
                continue
            index = as_int(call.get("index"))
            if index is None:  # some compatible servers omit it: a new id means a new call
                current = self._current
                new_id = as_str(call.get("id"))
                if current is None:
                    index = 0
                else:
                    index = current + 1 if new_id and new_id != self._calls[current].id else current
            open_call = self._calls.get(index)
            if open_call is None:
                self._close_calls(done)  # a new index: the earlier calls are complete
                open_call = self._calls[index] = self._open[index] = _OpenCall()
            self._current = index
            if index not in self._open:
                self._acc.note_once(f"tool call {index} received a delta after it was reported complete")
            call_id = as_str(call.get("id"))
            name, args = _call_parts(call)
            if call_id and not open_call.id:
                open_call.id = call_id
            if name and not open_call.name:
                open_call.name = name
            if args:
                open_call.parts.append(args)

    def _close_calls(self, done: list[ToolCallOut]) -> None:
        """Report every call not reported yet, in index order (one is open at a time, normally)."""
        for index in sorted(self._open):
            done.append(self._out(index, self._open.pop(index)))

    @staticmethod
    def _out(index: int, call: _OpenCall) -> ToolCallOut:
        return ToolCallOut(index, call.id, call.name, "".join(call.parts))
