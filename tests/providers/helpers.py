"""Shared by the provider tests: fixture loading, replaying bytes in pieces, and SDK clients that read a
fixture instead of a socket."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import httpx2

from toolwatch.providers.base import ParsedResponse, ResponseParser, ToolCallOut

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


def replay(
    factory: Callable[[], ResponseParser], pieces: Iterable[bytes]
) -> tuple[list[ToolCallOut], ParsedResponse]:
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
