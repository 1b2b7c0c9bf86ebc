"""Header rules for forwarding: what is stripped, what toolwatch reads, what may be recorded.

Pure functions over header multidicts; no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from multidict import CIMultiDict, CIMultiDictProxy

# RFC 9110 section 7.6.1 connection-specific fields, plus the obsolete ones proxies still strip.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Set again by the client library for the new connection (Host is the configured upstream's).
# (Content-Length is set again from the request's own, so a body is never re-chunked.)
REQUEST_DROP = frozenset({"host", "content-length"})
RESPONSE_DROP: frozenset[str] = frozenset()
_REQUEST_DROP_ALL = HOP_BY_HOP | REQUEST_DROP
_RESPONSE_DROP_ALL = HOP_BY_HOP | RESPONSE_DROP

TOOLWATCH_PREFIXES = ("toolwatch-", "helicone-")
SESSION_HEADERS = ("toolwatch-session-id", "helicone-session-id")
USER_HEADERS = ("toolwatch-user-id", "helicone-user-id")
AGENT_HEADERS = ("toolwatch-agent",)
PROPERTY_PREFIXES = ("toolwatch-property-", "helicone-property-")

# Response headers worth keeping with a record: request ids, rate limits, timings. Never credentials.
RECORDED_RESPONSE = frozenset(
    {
        "x-request-id",
        "request-id",
        "apim-request-id",
        "openai-processing-ms",
        "retry-after",
        "openai-model",
        "x-ms-region",
    }
)
RECORDED_RESPONSE_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")

Headers = CIMultiDictProxy[str] | CIMultiDict[str]


@dataclass(frozen=True)
class Tracing:
    """What the agent told toolwatch about the call through ``Toolwatch-*``/``Helicone-*`` headers."""

    session_id: str | None = None
    agent: str | None = None
    user_id: str | None = None
    properties: dict[str, str] = field(default_factory=dict)


def _connection_tokens(headers: Headers) -> set[str]:
    tokens: set[str] = set()
    for value in headers.getall("connection", ()):
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def _drop_set(headers: Headers, base: frozenset[str]) -> frozenset[str] | set[str]:
    """``base`` plus the fields the Connection header names (none, mostly: then ``base`` itself)."""
    if "connection" not in headers:
        return base
    return base | _connection_tokens(headers)


def _first(headers: Headers, names: tuple[str, ...]) -> str | None:
    for name in names:
        value = headers.get(name)
        if value:
            return value
    return None


def split_request(headers: Headers) -> tuple[CIMultiDict[str], Tracing]:
    """Headers to send upstream, and the tracing headers that were taken out of them."""
    drop = _drop_set(headers, _REQUEST_DROP_ALL)
    kept: list[tuple[str, str]] = []
    properties: dict[str, str] = {}
    traced = False
    for name, value in headers.items():
        low = name.lower()
        if low.startswith(TOOLWATCH_PREFIXES):
            traced = True  # read below even when Connection named it (it is still not forwarded)
            if low in drop:
                continue
            for prefix in PROPERTY_PREFIXES:
                if low.startswith(prefix) and len(low) > len(prefix):
                    properties.setdefault(name[len(prefix) :], value)
            continue
        if low in drop:
            continue
        kept.append((name, value))
    out: CIMultiDict[str] = CIMultiDict(kept)
    if not traced:  # no Toolwatch-*/Helicone-* header at all: nothing to look up
        return out, Tracing(properties=properties)
    tracing = Tracing(
        session_id=_first(headers, SESSION_HEADERS),
        agent=_first(headers, AGENT_HEADERS),
        user_id=_first(headers, USER_HEADERS),
        properties=properties,
    )
    return out, tracing


def response_headers(headers: Headers) -> CIMultiDict[str]:
    """Upstream response headers to send back to the agent."""
    drop = _drop_set(headers, _RESPONSE_DROP_ALL)
    return CIMultiDict([(k, v) for k, v in headers.items() if k.lower() not in drop])


def recorded_response_headers(headers: Headers) -> dict[str, str]:
    """The non-secret response headers stored with a call."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        low = name.lower()
        if low in RECORDED_RESPONSE or low.startswith(RECORDED_RESPONSE_PREFIXES):
            kept[low] = value
    return kept


# Where providers' SDKs put the API key: a bearer token, a key header, or Gemini's ``key`` query parameter.
KEY_HEADERS = ("x-api-key", "api-key", "x-goog-api-key")


def key_fingerprint(headers: Headers, query: Mapping[str, str], salt: bytes) -> str:
    """A salted HMAC-SHA256 (16 hex digits) of the API key the request carries, "" when it has none: lets
    reports group traffic by key without the key being stored anywhere."""
    key = None
    auth = headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        key = auth[7:].strip()
    if not key:
        key = next((v for h in KEY_HEADERS if (v := headers.get(h))), None) or query.get("key")
    if not key:
        return ""
    return hmac.new(salt, key.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[:16]


def install_byte_faithful_headers() -> None:
    """Make aiohttp write header values as the bytes they came from.

    aiohttp reads header bytes that are not UTF-8 as surrogate escapes, but its writer drops them, so an
    upstream's ``caf\\xe9.json`` reached the agent as ``caf.json``. Values with such escapes (rare: anything
    not ASCII) are written by this function with ``surrogateescape``, giving back the original bytes; the
    rest keep aiohttp's own fast writer. Idempotent."""
    from aiohttp import http_writer

    fast = getattr(http_writer, "_toolwatch_fast", None) or http_writer._serialize_headers
    if getattr(http_writer._serialize_headers, "_toolwatch", False):
        return

    def serialize(status_line: str, headers: CIMultiDict[str]) -> bytes:
        if status_line.isascii() and all(k.isascii() and v.isascii() for k, v in headers.items()):
            return fast(status_line, headers)
        lines = [http_writer._safe_header(status_line)]
        lines += [http_writer._safe_header(k) + ": " + http_writer._safe_header(v) for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")

    serialize._toolwatch = True  # type: ignore[attr-defined]
    http_writer._toolwatch_fast = fast  # type: ignore[attr-defined]
    http_writer._serialize_headers = serialize
