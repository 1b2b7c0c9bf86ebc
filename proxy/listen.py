"""The proxy's listening socket, with a bound on concurrent client connections.

Past ``max_connections``, a new connection is answered ``503`` and closed at once, before any byte of it
is read: memory stays bounded however many agents connect, and their SDKs retry as they do on any 503.
``raise_file_limit`` lifts the soft limit on open files so the bound, not the system, is what applies;
``settle_heap``, once the site listens, keeps the collector off what start-up built.

``bind`` takes the port before anything else starts (no recorder, no client session), and says in one
line what to do when it cannot: a port in use is the most common first-run error.

With several proxy processes (``serve --workers N``) the port is still bound once: ``serve`` makes the
sockets listen (``listening``) and hands them to its workers, which ``adopt`` them. Every connection waits
in the one backlog until some worker accepts it; no SO_REUSEPORT, so a second ``serve`` on the port fails.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import resource
import socket
from collections.abc import Callable

from aiohttp import web

from toolwatch.schemas.errors import ConfigError

REFUSAL = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(REFUSAL)
        transport.close()


class Bound:
    """Listening sockets that accept nothing until a ``LimitedSite`` starts serving on them."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.factory: Callable[[], asyncio.Protocol] = _Refuse
        self._server: asyncio.Server | None = None
        self._more: list[asyncio.Server] = []  # adopted sockets past the first: one server each

    @property
    def server(self) -> asyncio.Server:
        assert self._server is not None
        return self._server

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    async def start_serving(self) -> None:
        for server in (self.server, *self._more):
            await server.start_serving()

    def close(self) -> None:
        for server in (self._server, *self._more):
            if server is not None:
                server.close()


async def bind(host: str, port: int, backlog: int = 128) -> Bound:
    """Take the listening port (``0``: a free one). Raises ConfigError, in one line, when it cannot."""
    bound = Bound(host)
    try:
        bound._server = await asyncio.get_running_loop().create_server(
            lambda: bound.factory(), host, port, backlog=backlog, reuse_address=True, start_serving=False
        )
    except OSError as e:
        raise ConfigError(cannot_listen(host, port, e)) from e
    return bound


def listening(bound: Bound, backlog: int = 128) -> list[int]:
    """The bound sockets' descriptors, listening, for worker processes to inherit and ``adopt``. This
    process never accepts on them: it only keeps the port taken until it closes ``bound``."""
    fds = []
    for ts in bound.server.sockets:
        sock = socket.socket(fileno=os.dup(ts.fileno()))  # the same socket, through a descriptor of our own
        try:
            sock.listen(backlog)
        finally:
            sock.close()
        fds.append(ts.fileno())
    return fds


async def adopt(host: str, fds: list[int], backlog: int = 128) -> Bound:
    """The listening sockets a parent process bound (``listening``), ready for a ``LimitedSite``."""
    bound = Bound(host)
    loop = asyncio.get_running_loop()
    for fd in fds:
        server = await loop.create_server(
            lambda: bound.factory(), sock=socket.socket(fileno=fd), backlog=backlog, start_serving=False
        )
        if bound._server is None:
            bound._server = server
        else:
            bound._more.append(server)
    return bound


def cannot_listen(host: str, port: int, e: OSError) -> str:
    where = f"port {port} on {host}"
    if e.errno == errno.EADDRINUSE:
        return f"{where} is in use (another toolwatch? `--port 0` picks a free one, or stop what holds it)"
    if e.errno == errno.EACCES:
        return f"no permission to listen on {where} (ports below 1024 need privileges): choose another --port"
    if e.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}: it is not an address of this machine (--host, e.g. 127.0.0.1)"
    if isinstance(e, socket.gaierror):
        return f"cannot listen on {host}: the name does not resolve (--host, e.g. 127.0.0.1)"
    return f"cannot listen on {where}: {e.strerror or e}"


class LimitedSite(web.TCPSite):
    """A TCP site whose server refuses connections past ``max_connections`` (no SO_REUSEPORT), on the
    sockets ``bind`` took, or binds them itself when it starts."""

    def __init__(
        self, runner: web.AppRunner, host: str, port: int, *, max_connections: int, bound: Bound | None = None
    ) -> None:
        super().__init__(runner, host, port, reuse_address=True)
        self.bound = bound
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

        if self.bound is None:
            self.bound = await bind(self._host or "", self._port, self._backlog)
        self.bound.factory = factory
        self._server = self.bound.server
        await self.bound.start_serving()
        self._bound_port = self.bound.port

    async def stop(self) -> None:
        if self.bound is not None:
            self.bound.close()  # every socket it serves on, not only the first
        await super().stop()


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


def settle_heap() -> None:
    """Once the proxy listens: what start-up built (modules, settings, the app, its client session) lives as
    long as the process, so it moves out of the collector's sight (``gc.freeze``) and a full collection on
    the request path no longer walks it."""
    gc.collect()
    gc.freeze()
