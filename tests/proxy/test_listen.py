"""The bound on concurrent connections: past ``max_connections`` a new connection gets 503 at once, and
a place frees up when a connection closes. Regression: there was no limit at all."""

from __future__ import annotations

import asyncio
import resource

from aiohttp import web

from toolwatch.proxy.listen import LimitedSite, raise_file_limit


async def test_connections_past_the_bound_are_refused_and_places_free_up() -> None:
    app = web.Application()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = LimitedSite(runner, "127.0.0.1", 0, max_connections=3)
    await site.start()
    port = runner.addresses[0][1]
    held: list[asyncio.StreamWriter] = []
    closed: list[asyncio.StreamWriter] = []
    try:
        for _ in range(3):  # three idle keep-alive connections hold every place
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await reader.readuntil(b"hi")).startswith(b"HTTP/1.1 200")
            held.append(writer)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        closed = [writer]
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 503")
        assert site.refused == 1
        closed.append(held.pop())
        closed[-1].close()
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        closed.append(writer)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200")
    finally:
        for w in held + closed:
            w.close()
            await w.wait_closed()
        await runner.cleanup()


def test_the_file_limit_is_raised_to_fit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        got = raise_file_limit(1000)
        assert got == min(2256, hard) and resource.getrlimit(resource.RLIMIT_NOFILE)[0] == got
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
