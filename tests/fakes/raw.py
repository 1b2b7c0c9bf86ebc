"""Byte-level HTTP peers for tests that must control every byte: an upstream that answers with a canned
response exactly as given, and a client that sends a request exactly as given.

aiohttp (like any HTTP library) normalises what it sends, so it cannot send a header value that is not
UTF-8, a body without chunking at 40 MiB, or a stream that closes late; these helpers can.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Responder = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawUpstream:
    """Answers every request with ``respond(raw_request, writer)``; keeps the raw requests it read."""

    respond: Responder
    requests: list[bytes] = field(default_factory=list)
    url: str = ""
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> RawUpstream:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            raw = await read_request(reader)
            self.requests.append(raw)
            await self.respond(raw, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request: the head, then a body by Content-Length or chunked encoding (kept as sent)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        body = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            body += size_line + chunk
            if size == 0:
                return head + body
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


def canned(status_line: bytes, headers: list[bytes], body: bytes) -> Responder:
    """A responder that writes this response, byte for byte (Content-Length added)."""

    async def respond(_raw: bytes, writer: asyncio.StreamWriter) -> None:
        lines = [status_line, *headers, b"Content-Length: %d" % len(body)]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()

    return respond


async def raw_request(url: str, head: bytes, body: bytes = b"", timeout: float = 30.0) -> tuple[int, bytes]:
    """Send ``head`` (request line and headers, CRLF-separated, no blank line) and ``body`` on a fresh
    connection with ``Connection: close``; return the status and the raw response."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else 0
    return status, data
