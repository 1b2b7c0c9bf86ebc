"""Shared by the provider tests: fixture loading, replaying bytes in pieces, and SDK clients that read a
fixture instead of a socket."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx2
from hypothesis import strategies as st

from toolwatch.providers.base import ParsedResponse, ResponseParser, ToolCallOut

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


def replay(factory: Callable[[], ResponseParser], pieces: Iterable[bytes]) -> tuple[list[ToolCallOut], ParsedResponse]:
    """Feed the pieces in order; return the calls ``feed`` reported (in order) and ``finish``'s result."""
    parser = factory()
    reported: list[ToolCallOut] = []
    for piece in pieces:
        reported += parser.feed(piece)
    return reported, parser.finish()


def two_piece_splits(data: bytes) -> Iterator[list[bytes]]:
    """``[data[:i], data[i:]]`` for every offset, including the empty ends."""
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def events_of(stream: bytes) -> list[bytes]:
    """The stream cut after each blank line, i.e. one SSE event per piece (LF streams only)."""
    parts = stream.split(b"\n\n")
    pieces = [p + b"\n\n" for p in parts[:-1]]
    return pieces + ([parts[-1]] if parts[-1] else [])


def mock_http(body: bytes, content_type: str, status: int = 200) -> httpx2.Client:
    """An HTTP client for the official SDKs whose every request is answered with ``body``, no socket."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=body, headers={"content-type": content_type})

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def json_values(keys: list[str], words: list[str]) -> st.SearchStrategy[Any]:
    """Random JSON built from a provider's own keys and words, so that it reaches deep into a parser."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6),
        st.sampled_from(words),
    )
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(keys), inner, max_size=6),
        max_leaves=12,
    )


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        yield from _paths(value, (*prefix, key))


def _replaced(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(obj) if isinstance(obj, dict) else list(obj)
    copy[path[0]] = _replaced(obj[path[0]], path[1:], value)
    return copy


def mutate(data: st.DataObject, obj: Any, values: st.SearchStrategy[Any], count: int = 3) -> Any:
    """``obj`` (a recorded sample's JSON) with up to ``count`` random subtrees replaced by random values:
    every place a parser reads is, in some example, of the wrong type or missing its contents."""
    for _ in range(data.draw(st.integers(1, count))):
        paths = list(_paths(obj))
        obj = _replaced(obj, paths[data.draw(st.integers(0, len(paths) - 1))], data.draw(values))
    return obj


def mutate_stream(data: st.DataObject, stream: bytes, values: st.SearchStrategy[Any]) -> bytes:
    """A recorded LF stream with the JSON of one of its ``data:`` lines mutated (see ``mutate``)."""
    events = events_of(stream)
    index = data.draw(st.integers(0, len(events) - 1))
    lines = events[index].split(b"\n")
    for n, line in enumerate(lines):
        try:
            obj = json.loads(line[6:]) if line.startswith(b"data: {") else None
        except ValueError:  # the cut-off last line of a broken stream
            continue
        if obj is not None:
            lines[n] = b"data: " + json.dumps(mutate(data, obj, values)).encode()
    events[index] = b"\n".join(lines)
    return b"".join(events)
