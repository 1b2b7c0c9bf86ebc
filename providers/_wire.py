"""Small helpers shared by the provider parsers: JSON in and out, and type-checked field access.

Wire JSON is untrusted, so every accessor returns None (or a default) for a value of the wrong type
instead of raising; the parsers then decide what to note in ``errors``.

Every string that comes out of here can be encoded as UTF-8. JSON may spell a lone surrogate
(``"\\ud800"``), which orjson refuses but the standard library's parser lets through into a ``str``
that no UTF-8 encoder (nor the store) accepts; those strings get U+FFFD in its place.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from toolwatch.providers.base import ParsedRequest, ParsedResponse

__all__ = [
    "as_dict",
    "as_int",
    "as_list",
    "as_str",
    "clean_text",
    "compact_json",
    "content_text",
    "error_fields",
    "load_body",
    "loads",
    "plain_numbers",
    "snippet",
    "strict_json",
]

_MISSING = object()


# digits -> "1", everything else -> "0": a run of 19 ones marks a number that may not fit 64 bits
_DIGITS = bytes(0x31 if 0x30 <= i <= 0x39 else 0x30 for i in range(256))
_LONG_RUN = b"1" * 19


# where the standard library's parser may give a lone surrogate: a \uD800-\uDFFF escape, a surrogate
# encoded as UTF-8 (it decodes bytes with "surrogatepass"), UTF-16 or UTF-32 text (which holds NUL
# bytes), or a surrogate already in a str
_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
_ESCAPE_TEXT = re.compile(r"\\u[dD][89a-fA-F]")
_ENCODED = re.compile(rb"\xed[\xa0-\xbf]")


def _suspect(data: bytes | str) -> bool:
    """Whether parsed ``data`` may hold a lone surrogate (C-speed scans; a regex only where they hit)."""
    if isinstance(data, str):
        if "\\u" in data and _ESCAPE_TEXT.search(data):
            return True
        return not data.isascii() and clean_text(data) is not data
    if b"\\u" in data and _ESCAPE_BYTES.search(data):
        return True
    return b"\x00" in data or (b"\xed" in data and _ENCODED.search(data) is not None)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def clean_text(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (a pair of surrogates becomes its character)."""
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _cleaned(value: Any) -> Any:
    """``value`` with ``clean_text`` applied to every string in it, keys included (in place: the value
    was just parsed, so nothing else holds it). A loop, not recursion: the value may nest 1000 deep."""
    if isinstance(value, str):
        return clean_text(value)
    todo = [value]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str):
                    node[i] = clean_text(item)
                elif isinstance(item, list | dict):
                    todo.append(item)
        elif isinstance(node, dict):
            if not all(key.isascii() for key in node):
                items = [(clean_text(k), v) for k, v in node.items()]
                node.clear()
                node.update(items)
            for key, item in node.items():
                if isinstance(item, str):
                    node[key] = clean_text(item)
                elif isinstance(item, list | dict):
                    todo.append(item)
    return value


def strict_json(data: bytes | str) -> Any:
    """The standard library's parser, minus its NaN/Infinity extension; integers of any size stay exact
    and strings hold no lone surrogate (see the module docstring). Raises ValueError or RecursionError."""
    value = json.loads(data, parse_constant=_no_constants)
    return _cleaned(value) if _suspect(data) else value


def plain_numbers(raw: bytes) -> bool:
    """No run of 19 digits in ``raw``: orjson keeps every integer in it (or in any part of it) exactly."""
    return _LONG_RUN not in raw.translate(_DIGITS)


def loads(data: bytes | str) -> tuple[Any, str | None]:
    """Parse JSON; return ``(value, None)`` or ``(None, problem)``. Never raises.

    orjson is fast but turns integers beyond 64 bits into floats, so text with a long digit run goes to
    the standard library instead (which keeps them exact)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
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
        return clean_text(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
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
