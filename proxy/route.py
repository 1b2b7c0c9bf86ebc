"""Where a request goes: only ever to a configured upstream, under its base URL.

``resolve`` is pure. The mount name is matched on the decoded first path segment (``/%6fpenai/...`` is
``openai``), and the rest of the path is taken from the same raw path right after that segment, so the
agent's own percent-encoding reaches the upstream unchanged. A target that is not in origin form (an
absolute URL, ``*``), a path with dot segments (raw or percent-encoded), or anything whose built URL would
differ from the upstream's scheme, host, port or base path is refused with 400 before any connection is
made: no request can pick the host its credentials go to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from yarl import URL

from toolwatch.schemas.settings import Upstream

_DOT_SEGMENT = re.compile(r"(?:^|/)(?:\.|%2e){1,2}(?:/|$)", re.IGNORECASE)


class RouteError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Route:
    name: str
    upstream: Upstream
    rest: str  # the raw path below the mount ("" for the mount itself), without the query string
    target: URL


def resolve(raw_target: str, upstreams: dict[str, Upstream]) -> Route:
    """The route for a request target as it arrived (``request.raw_path``: path and query, raw)."""
    if not raw_target.startswith("/") or raw_target.startswith("//"):
        raise RouteError(400, "the request target must be a path (origin form); absolute URLs are refused")
    raw_path, sep, raw_query = raw_target.partition("?")
    segment, _, _ = raw_path[1:].partition("/")
    name = unquote(segment)
    rest = raw_path[1 + len(segment) :]
    upstream = upstreams.get(name)
    if upstream is None:
        raise RouteError(404, f"no upstream named {name!r} is configured")
    if "\\" in rest or _DOT_SEGMENT.search(unquote(rest)):
        raise RouteError(400, "the path may not hold dot segments (. or ..) or backslashes")
    base = URL(upstream.url)
    try:
        target = URL(upstream.url + rest + (sep + raw_query if sep else ""), encoded=True)
    except ValueError as e:
        raise RouteError(400, f"the request target is not a valid URL path: {e}") from None
    if (
        target.scheme != base.scheme
        or target.host != base.host
        or target.port != base.port
        or not target.raw_path.startswith(base.raw_path.rstrip("/"))
        or target.user is not None
    ):
        raise RouteError(400, "the request target would leave the configured upstream")
    return Route(name, upstream, rest, target)
