"""A provider's answer, as bytes ready to be written by the fake upstream."""

from __future__ import annotations

from dataclasses import dataclass

from toolwatch.demo.script import Reply


@dataclass(frozen=True)
class Rendered:
    """Status, headers and body pieces; a stream is one piece per SSE event (or per array element)."""

    status: int
    headers: dict[str, str]
    pieces: list[bytes]
    stream: bool

    @classmethod
    def json(cls, reply: Reply, headers: dict[str, str], body: bytes) -> Rendered:
        body = reply.raw if reply.raw is not None else body
        if reply.garbage is not None:
            body += reply.garbage
        headers = {**headers, "content-type": "application/json", **reply.headers}
        return cls(reply.status, headers, [body], stream=False)

    @classmethod
    def sse(cls, reply: Reply, headers: dict[str, str], events: list[bytes]) -> Rendered:
        pieces = [reply.raw] if reply.raw is not None else list(events)
        if reply.garbage is not None:
            pieces.insert(max(0, len(pieces) - 1), reply.garbage)
        headers = {
            **headers,
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            **reply.headers,
        }
        return cls(reply.status, headers, pieces, stream=True)

    @classmethod
    def json_stream(cls, reply: Reply, headers: dict[str, str], pieces: list[bytes]) -> Rendered:
        """A JSON body written in pieces as they are produced (Gemini's array stream)."""
        pieces = [reply.raw] if reply.raw is not None else list(pieces)
        if reply.garbage is not None:
            pieces.insert(max(0, len(pieces) - 1), reply.garbage)
        headers = {**headers, "content-type": "application/json; charset=UTF-8", **reply.headers}
        return cls(reply.status, headers, pieces, stream=True)
