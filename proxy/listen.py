"""The proxy's listening socket, with a bound on concurrent client connections.

Past ``max_connections``, a new connection is answered ``503`` and closed at once, before any byte of it
is read: memory stays bounded however many agents connect, and their SDKs retry as they do on any 503.
``raise_file_limit`` lifts the soft limit on open files so the bound, not the system, is what applies.
"""

from __future__ import annotations

import asyncio
import resource

from aiohttp import web

REFUSAL = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(REFUSAL)
        transport.close()


class LimitedSite(web.TCPSite):
    """A TCP site whose server refuses connections past ``max_connections`` (no SO_REUSEPORT)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, max_connections: int) -> None:
        super().__init__(runner, host, port, reuse_address=True)
        self.max_connections = max_connections
        self.refused = 0

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner, as TCPSite.start does
        handler = self._runner.server
        assert handler is not None

        def factory() -> asyncio.Protocol:
            if len(handler.connections) >= self.max_connections:
                self.refused += 1
                return _Refuse()
            return handler()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            factory, self._host, self._port, backlog=self._backlog, reuse_address=True
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port


def raise_file_limit(connections: int) -> int:
    """Raise the soft limit on open files to fit ``connections`` (each holds an agent's socket and, while
    forwarding, an upstream's). Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = connections * 2 + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError):
            pass
    return soft
