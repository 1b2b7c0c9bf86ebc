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

__all__ = ["ChatCompletionParser", "ChatCompletionStreamParser", "parse_request", "parse_usage"]


def parse_request(body: bytes) -> ParsedRequest:
    """Read what a Chat Completions request declares and resends; never raises."""
    req = load_request(body)
    if isinstance(req, ParsedRequest):
        return req
    problems: list[str] = []
    tools: list[ToolDecl] = []
    specs = [(t, _tool_spec(t)) for t in as_list(req.get("tools"))]
    specs += [(f, f) for f in as_list(req.get("functions"))]  # the legacy form of ``tools``
    for item, found in specs:
        spec = found if isinstance(found, dict) else {}
        name = as_str(spec.get("name"))
        if name is None:
            problems.append(f"tool declaration without a name: {snippet(compact_json(item))}")
            continue
        schema = spec.get("parameters")  # custom (free-form) tools have a grammar, not a schema
        tools.append(ToolDecl(name, compact_json(schema) if schema is not None else None))

    results: list[ToolResultIn] = []
    prior: list[str] = []
    system: list[str] = []  # the leading system/developer messages: later ones are reminders, not identity
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
        if role in ("system", "developer") and first_user is None and reply_text is None:
            system.append(content_text(msg.get("content"), "\n"))
        elif role == "user" and first_user is None:
            first_user = content_text(msg.get("content"), "\n")
        elif role == "tool":
            call_id = as_str(msg.get("tool_call_id"))
            if call_id is None:
                problems.append("tool message without tool_call_id")
                continue
            results.append(ToolResultIn(call_id, content_text(msg.get("content"))))
        elif role == "assistant":
            ids = [i for c in as_list(msg.get("tool_calls")) if (i := as_str((as_dict(c) or {}).get("id")))]
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
        system_text="\n".join(system),
        first_user_text=first_user or "",
        first_reply_text=reply_text,
        first_reply_tool_ids=reply_ids,
    )


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
        errors: list[str] = []
        err = error_fields(resp)
        choices = as_list(resp.get("choices"))
        choice = as_dict(choices[0]) if choices else None
        if len(choices) > 1:
            errors.append(f"{len(choices)} choices: only choice 0 recorded")
        if choice is None and err is None:
            errors.append("response has no choices")
        message = as_dict((choice or {}).get("message")) or {}
        calls: list[ToolCallOut] = []
        for index, item in enumerate(as_list(message.get("tool_calls"))):
            call = as_dict(item) or {}
            name, args = _call_parts(call)
            if name is None:
                errors.append(f"tool call {index} has no name")
            calls.append(ToolCallOut(index, as_str(call.get("id")) or "", name or "", args or ""))
        legacy = as_dict(message.get("function_call"))
        if legacy is not None and not calls:
            name, args = _call_parts({"function": legacy})
            calls.append(ToolCallOut(0, "", name or "", args or ""))
        return ParsedResponse(
            model=as_str(resp.get("model")),
            response_id=as_str(resp.get("id")),
            tool_calls=tuple(calls),
            finish_reason=as_str((choice or {}).get("finish_reason")),
            usage=parse_usage(resp.get("usage")) or Usage(),
            text=content_text(message.get("content")),
            error_type=err[0] if err else None,
            error_message=err[1] if err else None,
            complete=True,
            errors=tuple(errors),
        )


@dataclass
class _OpenCall:
    id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)
    reported: bool = False


class ChatCompletionStreamParser(SSEEventParser):
    """Streamed response (``chat.completion.chunk`` events, ``data: [DONE]`` at the end).

    Argument fragments of a tool call index are concatenated exactly as sent. ``feed`` reports a call
    when the next index starts or choice 0 gets a ``finish_reason``; fragments that arrive for a call
    already reported still go into the final result and are noted in ``errors``.
    """

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._calls: dict[int, _OpenCall] = {}
        self._current: int | None = None
        self._text: list[str] = []
        self._model: str | None = None
        self._id: str | None = None
        self._finish_reason: str | None = None
        self._usage = Usage()
        self._error: tuple[str | None, str | None] | None = None
        self._done = False
        self._errors: list[str] = []
        self._skipped = 0

    def finish(self) -> ParsedResponse:
        done: list[ToolCallOut] = []
        for event in self._sse.flush():
            self._event(event.event, event.data, done)
        self._close_calls(None, done)
        self._errors += self._sse.notes()
        if not self._done:
            self._errors.append("stream ended before data: [DONE]")
        return ParsedResponse(
            model=self._model,
            response_id=self._id,
            tool_calls=tuple(self._out(i, c) for i, c in sorted(self._calls.items())),
            finish_reason=self._finish_reason,
            usage=self._usage,
            text="".join(self._text),
            error_type=self._error[0] if self._error else None,
            error_message=self._error[1] if self._error else None,
            complete=self._done,
            errors=tuple(self._errors),
            skipped=self._skipped,
        )

    def _event(self, name: str, data: str, done: list[ToolCallOut]) -> None:
        if self._done or name not in ("message", "error"):
            self._skipped += 1
            return
        if data == "[DONE]":
            self._done = True
            self._close_calls(None, done)
            return
        obj, problem = loads(data)
        chunk = as_dict(obj)
        if chunk is None:
            self._errors.append(f"event data is not a JSON object ({problem}): {snippet(data)}")
            return
        err = error_fields(chunk)
        if err is not None:
            self._error = err
            return
        if chunk.get("object", "chat.completion.chunk") != "chat.completion.chunk":
            self._skipped += 1
            return
        self._model = self._model or as_str(chunk.get("model"))
        self._id = self._id or as_str(chunk.get("id"))
        usage = parse_usage(chunk.get("usage"))
        if usage is not None:
            self._usage = usage
        for item in as_list(chunk.get("choices")):
            choice = as_dict(item) or {}
            if choice.get("index", 0) != 0:
                if "choices other than index 0 ignored" not in self._errors:
                    self._errors.append("choices other than index 0 ignored")
                continue
            self._delta(as_dict(choice.get("delta")) or {}, done)
            reason = as_str(choice.get("finish_reason"))
            if reason is not None:
                self._finish_reason = reason
                self._close_calls(None, done)

    def _delta(self, delta: dict[str, Any], done: list[ToolCallOut]) -> None:
        content = as_str(delta.get("content"))
        if content:
            self._text.append(content)
        calls = as_list(delta.get("tool_calls"))
        legacy = as_dict(delta.get("function_call"))
        if legacy is not None and not calls:
            calls = [{"index": 0, "function": legacy}]
        for item in calls:
            call = as_dict(item)
            if call is None:
                self._errors.append(f"tool call delta is not an object: {snippet(compact_json(item))}")
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
                self._close_calls(index, done)
                open_call = self._calls[index] = _OpenCall()
            self._current = index
            if open_call.reported:
                note = f"tool call {index} received a delta after it was reported complete"
                if note not in self._errors:
                    self._errors.append(note)
            call_id = as_str(call.get("id"))
            name, args = _call_parts(call)
            if call_id and not open_call.id:
                open_call.id = call_id
            if name and not open_call.name:
                open_call.name = name
            if args:
                open_call.parts.append(args)

    def _close_calls(self, keep: int | None, done: list[ToolCallOut]) -> None:
        """Report every open call except ``keep`` (the index that is starting)."""
        for index, call in sorted(self._calls.items()):
            if index != keep and not call.reported:
                call.reported = True
                done.append(self._out(index, call))

    @staticmethod
    def _out(index: int, call: _OpenCall) -> ToolCallOut:
        return ToolCallOut(index, call.id, call.name, "".join(call.parts))
