"""Where a request goes: only ever to a configured upstream, under its base URL.

``resolve`` is pure. The mount name is matched on the decoded first path segment (``/%6fpenai/...`` is
``openai``), and the rest of the path is taken from the same raw path right after that segment, so the
agent's own percent-encoding reaches the upstream unchanged. A target that is not in origin form (an
absolute URL, ``*``), a path with dot segments (raw or percent-encoded), or anything whose built URL would
differ from the upstream's scheme, host, port or base path is refused with 400 before any connection is
made: no request can pick the host its credentials go to.

A request for a mount that is not configured is told which are, with the nearest name when the one it
used looks like a typo (``/opnai/...``), or how the path should start when the mount was left out
(``/v1/chat/completions``).
"""

from __future__ import annotations

import difflib
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
        raise RouteError(404, unknown_mount(name, raw_path, rest, upstreams))
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


def agent_base(name: str, upstream: Upstream) -> str:
    """The path an agent's base URL ends in for this mount. OpenAI's SDKs put the API version in the base
    URL, so an OpenAI-flavoured upstream configured without a path (``https://api.openai.com``) is
    reached at ``/NAME/v1``; every other one at ``/NAME``, as its SDK adds what follows."""
    if upstream.api == "openai" and URL(upstream.url).path in ("", "/"):
        return f"/{name}/v1"
    return f"/{name}"


# first path segments of the providers' own APIs: a path that starts with one has left out the mount
_API_SEGMENTS = frozenset({"v1", "v1beta", "v1alpha", "v2", "v3", "v4", "chat", "completions", "messages",
                           "responses", "models", "embeddings", "files", "deployments"})  # fmt: skip
# which API a path's ending belongs to, for the example mount
_ENDINGS = (("/messages", "anthropic"), (":generateContent", "gemini"), (":streamGenerateContent", "gemini"))


def unknown_mount(name: str, raw_path: str, rest: str, upstreams: dict[str, Upstream]) -> str:
    """What a request whose first path segment names no configured upstream is told: the configured
    ones, and the nearest name when this one looks like a typo, or the path to use when the mount was
    left out."""
    names = sorted(upstreams)
    configured = "configured upstreams: " + (", ".join(names) or "none")
    said = f"no upstream named {name!r} is configured"
    if not names:
        return f"{said} ({configured})"
    if name.lower() in _API_SEGMENTS and name not in upstreams:
        mount = _mount_for(raw_path, upstreams)
        base = agent_base(mount, upstreams[mount])
        example = base + raw_path.removeprefix(base.removeprefix(f"/{mount}"))
        return (
            f"{said}: the path must start with the upstream's mount, e.g. {example}"
            f" (an agent's base URL ends in {base}); {configured}"
        )
    near = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.6)
    if near:
        return f"{said}: did you mean {near[0]!r} (/{near[0]}{rest or '/...'})? {configured}"
    return f"{said}; {configured} (a path starts with the mount: /NAME/...)"


def _mount_for(raw_path: str, upstreams: dict[str, Upstream]) -> str:
    """The configured mount an API path most likely meant: by the path's ending, else OpenAI's."""
    path = raw_path.rstrip("/")
    api = next((a for ending, a in _ENDINGS if path.endswith(ending)), "openai")
    if api in upstreams and upstreams[api].api == api:
        return api
    same = sorted(n for n, u in upstreams.items() if u.api == api)
    return same[0] if same else sorted(upstreams)[0]
