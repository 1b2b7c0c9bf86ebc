"""Small helpers shared by the provider parsers: JSON in and out, and type-checked field access.

Wire JSON is untrusted, so every accessor returns None (or a default) for a value of the wrong type
instead of raising; the parsers then decide what to note in ``errors``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from toolwatch.providers.base import ParsedRequest, ParsedResponse, ToolCallOut
from toolwatch.providers.sse import SSEDecoder

__all__ = [
    "as_dict",
    "as_int",
    "as_list",
    "as_str",
    "compact_json",
    "content_text",
    "error_fields",
    "load_body",
    "loads",
    "snippet",
]

_MISSING = object()


# digits -> "1", everything else -> "0": a run of 19 ones marks a number that may not fit 64 bits
_DIGITS = bytes(0x31 if 0x30 <= i <= 0x39 else 0x30 for i in range(256))
_LONG_RUN = b"1" * 19


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(data: bytes | str) -> Any:
    """The standard library's parser, minus its NaN/Infinity extension; integers of any size stay exact."""
    return json.loads(data, parse_constant=_no_constants)


def loads(data: bytes | str) -> tuple[Any, str | None]:
    """Parse JSON; return ``(value, None)`` or ``(None, problem)``. Never raises.

    orjson is fast but turns integers beyond 64 bits into floats, so text with a long digit run goes to
    the standard library instead (which keeps them exact)."""
    raw = data.encode() if isinstance(data, str) else data
    if _LONG_RUN not in raw.translate(_DIGITS):  # a C-speed scan; a regex here cost more than the parse
        try:
            return orjson.loads(raw), None
        except orjson.JSONDecodeError as exc:
            return None, str(exc)
    try:
        return strict_json(raw), None
    except (ValueError, RecursionError) as exc:
        return None, str(exc)


def compact_json(value: object) -> str:
    """Serialise compactly (no spaces, keys in their original order, non-ASCII kept as is); a value too
    deeply nested for the standard library becomes ``"null"`` rather than an exception."""
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):  # integers beyond 64 bits, nesting deeper than 255
        pass
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return "null"


def as_dict(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def as_int(value: object) -> int | None:
    """A JSON integer (booleans are not integers here)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def content_text(content: object, sep: str = "") -> str:
    """Message or block content as text: a string as is, or the ``text`` of its ``{"type": "text"}``
    parts joined by ``sep`` (OpenAI content parts and Anthropic blocks share that shape; images, cache
    markers and other parts are left out)."""
    if isinstance(content, str):
        return content
    parts = (as_dict(p) or {} for p in as_list(content))
    return sep.join(as_str(p.get("text")) or "" for p in parts if p.get("type") == "text")


def error_fields(obj: dict[str, Any]) -> tuple[str | None, str | None] | None:
    """``(type, message)`` of a provider error object ``{"error": {...}}``, or None if there is none.

    The type is ``error.type``, falling back to ``error.code`` (OpenAI sets one or both); an ``error``
    that is a bare string is taken as the message.
    """
    err = obj.get("error", _MISSING)
    if err is _MISSING or err is None:
        return None
    if isinstance(err, str):
        return None, err
    detail = as_dict(err)
    if detail is None:
        return None, compact_json(err)
    kind = as_str(detail.get("type")) or as_str(detail.get("code"))
    code = detail.get("code")
    if kind is None and as_int(code) is not None:
        kind = str(code)
    return kind, as_str(detail.get("message"))


def snippet(text: str | bytes, limit: int = 80) -> str:
    """A short, printable excerpt of bad input for an ``errors`` entry."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


def load_body(body: bytes) -> dict[str, Any] | ParsedResponse:
    """A whole response body as a JSON object, or the (incomplete) result to return when it is not one."""
    obj, problem = loads(body)
    if problem is not None:
        return ParsedResponse(errors=(f"response body is not JSON: {problem}",))
    if not isinstance(obj, dict):
        return ParsedResponse(errors=("response body is not a JSON object",))
    return obj


def load_request(body: bytes) -> dict[str, Any] | ParsedRequest:
    """A request body as a JSON object, or the ParsedRequest (with ``error``) to return when it is not one."""
    obj, problem = loads(body)
    if problem is not None:
        return ParsedRequest(error=f"request body is not JSON: {problem}")
    if not isinstance(obj, dict):
        return ParsedRequest(error="request body is not a JSON object")
    return obj


class BufferedJSONParser:
    """A non-streamed response parser: buffers the body, and ``finish`` hands the JSON object to ``parse``."""

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
    """Base of the SSE stream parsers: each decoded event goes to ``_event``, which appends the tool calls
    it completes to ``done``. A subclass sets ``self._sse`` and ``self._errors``; its ``finish`` calls
    ``_drain`` (the last event may lack its blank line) before building its result."""

    _sse: SSEDecoder
    _errors: list[str]

    def feed(self, chunk: bytes) -> list[ToolCallOut]:
        done: list[ToolCallOut] = []
        for event in self._sse.feed(chunk):
            self._event(event.event, event.data, done)
        return done

    def _drain(self) -> None:
        done: list[ToolCallOut] = []
        for event in self._sse.flush():
            self._event(event.event, event.data, done)
        self._errors += self._sse.notes()

    def _event(self, name: str, data: str, done: list[ToolCallOut]) -> None:
        raise NotImplementedError
