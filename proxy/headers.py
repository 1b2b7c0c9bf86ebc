"""Header rules for forwarding: what is stripped, what toolwatch reads, what may be recorded.

Pure functions over header multidicts; no I/O.
"""

from __future__ import annotations

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
REQUEST_DROP = frozenset({"host", "content-length"})
RESPONSE_DROP = frozenset({"content-length"})
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
