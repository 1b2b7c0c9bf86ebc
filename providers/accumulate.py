"""The shape every provider parser shares, so that a provider module holds only its wire logic.

- ``RequestFields``: what a request parser gathers from one body (tools, tool results, the tool-call ids
  it resends, the conversation's opening, the problems it met); ``result`` freezes it into a
  ``ParsedRequest``.
- ``Accumulator``: what a response parser gathers from one body or from the events of one stream (model,
  id, tool calls, finish reason, usage, text, the provider's error object, parse problems, skipped
  items); ``result`` freezes it into a ``ParsedResponse``.
- ``BufferedJSONParser`` and ``SSEEventParser``: the two response parser skeletons, a whole JSON body
  handed to ``parse`` once it is all there, and SSE events handed to ``_event`` as they complete.

Problems are kept in the order they were met, which is the order ``errors`` (and the recorder's parse
note) shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from toolwatch.providers._wire import as_str, compact_json, load_body, load_request, loads, plain_numbers, snippet
from toolwatch.providers.base import ParsedRequest, ParsedResponse, ToolCallOut, ToolDecl, ToolResultIn, Usage
from toolwatch.providers.sse import SSEDecoder

__all__ = ["Accumulator", "BufferedJSONParser", "RequestFields", "SSEEventParser"]


@dataclass
class RequestFields:
    """What a request parser has gathered from ``body``, a request that is a JSON object.

    ``system`` parts are joined with "\\n"; ``reply_text`` and ``reply_ids`` are the first assistant
    reply (None while there is none); ``problems`` become the request's ``error``.
    """

    body: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    tools: list[ToolDecl] = field(default_factory=list)
    results: list[ToolResultIn] = field(default_factory=list)
    prior: list[str] = field(default_factory=list)
    system: list[str] = field(default_factory=list)
    first_user: str | None = None
    reply_text: str | None = None
    reply_ids: tuple[str, ...] = ()

    @classmethod
    def load(cls, body: bytes) -> RequestFields | ParsedRequest:
        """Fields to fill in, or the ParsedRequest (with ``error``) to return when the body is not an object."""
        req = load_request(body)
        return req if isinstance(req, ParsedRequest) else cls(req)

    def declare(self, item: object, name: str | None, schema: object = None, what: str = "tool declaration") -> None:
        """A declared tool (``schema`` is its JSON Schema, or None); one without a name is a problem,
        shown by an excerpt of ``item``, the declaration as sent."""
        if name is None:
            self.problems.append(f"{what} without a name: {snippet(compact_json(item))}")
            return
        self.tools.append(ToolDecl(name, compact_json(schema) if schema is not None else None))

    def turns(self, key: str) -> list[Any]:
        """The list of messages under ``key``, or [] (and a problem) when it is missing or not a list."""
        value = self.body.get(key)
        if isinstance(value, list):
            return value
        self.problems.append(f"{key} is missing or not a list")
        return []

    def result(
        self, message_count: int, stream: bool | None = None, previous_response_id: str | None = None
    ) -> ParsedRequest:
        """The request as parsed. ``stream`` defaults to the body's ``"stream": true``. A request that
        continues a previous response carries no opening: the conversation's start lives upstream."""
        opening = previous_response_id is None
        return ParsedRequest(
            model=as_str(self.body.get("model")),
            stream=self.body.get("stream") is True if stream is None else stream,
            tools=tuple(self.tools),
            tool_results=tuple(self.results),
            prior_tool_call_ids=tuple(self.prior),
            message_count=message_count,
            error="; ".join(self.problems) or None,
            system_text="\n".join(self.system) if opening else "",
            first_user_text=(self.first_user or "") if opening else "",
            first_reply_text=self.reply_text if opening else None,
            first_reply_tool_ids=self.reply_ids if opening else (),
            previous_response_id=previous_response_id,
        )


@dataclass
class Accumulator:
    """What a response parser has gathered so far; ``text`` parts are joined with ``text_sep``.

    ``error`` is the provider's own error object as ``(type, message)``; ``errors`` are parse problems.
    """

    text_sep: str = ""
    model: str | None = None
    response_id: str | None = None
    calls: list[ToolCallOut] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    text: list[str] = field(default_factory=list)
    error: tuple[str | None, str | None] | None = None
    errors: list[str] = field(default_factory=list)
    skipped: int = 0
    _once: set[str] = field(default_factory=set, repr=False)

    def note(self, problem: str) -> None:
        self.errors.append(problem)

    def note_once(self, problem: str) -> None:
        """A problem that may recur on every event or item is noted once (a set keeps that cheap on a
        stream of a million events)."""
        if problem not in self._once:
            self._once.add(problem)
            self.errors.append(problem)

    def result(self, complete: bool) -> ParsedResponse:
        """The response as parsed; ``complete`` is the transport's verdict (see ``ParsedResponse``)."""
        return ParsedResponse(
            model=self.model,
            response_id=self.response_id,
            tool_calls=tuple(self.calls),
            finish_reason=self.finish_reason,
            usage=self.usage,
            text=self.text_sep.join(self.text),
            error_type=self.error[0] if self.error else None,
            error_message=self.error[1] if self.error else None,
            complete=complete,
            errors=tuple(self.errors),
            skipped=self.skipped,
        )


class BufferedJSONParser:
    """A non-streamed response parser: buffers the body, and ``finish`` hands the JSON object to ``parse``
    (a body that is not one gives an incomplete result with the reason in ``errors``)."""

    def __init__(self) -> None:
        self._body = bytearray()

    def feed(self, chunk: bytes) -> list[ToolCallOut]:
        self._body += chunk
        return []

    def finish(self) -> ParsedResponse:
        resp = load_body(bytes(self._body))
        return resp if isinstance(resp, ParsedResponse) else self.parse(resp)

    def parse(self, resp: dict[str, Any]) -> ParsedResponse:
        raise NotImplementedError


class SSEEventParser:
    """Base of the SSE stream parsers. Each decoded event goes to ``_event``, which records what it says
    in ``_acc`` and appends the tool calls it completes to ``done``. At the end of the stream (also when
    it broke off) the last event is dispatched even without its blank line, the decoder's notes are added,
    and ``_close`` settles what is still open and says whether the stream was complete."""

    def __init__(self, text_sep: str = "") -> None:
        self._sse = SSEDecoder()
        self._acc = Accumulator(text_sep)
        self._plain = False  # the events being handled hold no integer orjson would not keep exactly

    def feed(self, chunk: bytes) -> list[ToolCallOut]:
        done: list[ToolCallOut] = []
        # one scan of the chunk instead of one per event, when every event it completes lies within it
        self._plain = self._sse.clean() and plain_numbers(chunk)
        for name, data, _ in self._sse.events_of(chunk):
            self._event(name, data, done)
        self._plain = False
        return done

    def finish(self) -> ParsedResponse:
        done: list[ToolCallOut] = []
        for name, data, _ in self._sse.flush_events():
            self._event(name, data, done)
        self._acc.errors += self._sse.notes()
        return self._acc.result(self._close())

    def _loads(self, data: str) -> tuple[Any, str | None]:
        """``loads(data)``, without its per-event scan for long integers when ``feed`` has scanned the chunk."""
        if self._plain:
            try:
                return orjson.loads(data), None
            except orjson.JSONDecodeError:
                pass  # the same error as loads gives, from loads
        return loads(data)

    def _event(self, name: str, data: str, done: list[ToolCallOut]) -> None:
        raise NotImplementedError

    def _close(self) -> bool:
        raise NotImplementedError
