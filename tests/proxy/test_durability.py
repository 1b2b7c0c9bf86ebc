"""An exchange is in the spool before the last byte of its answer reaches the agent.

The sink here blocks the event loop for a moment when it is handed the exchange (as a slow disk would).
If the forwarder handed it over after the answer's last byte, the client would have its whole answer
before the sink's work was done; the guarantee says the opposite order, for every way an answer ends:
a JSON body, an SSE stream, a body of known length streamed back, and toolwatch's own error answer.

Regression: the exchange used to wait in an in-memory batch after its response completed, and a SIGKILL
then lost calls whose clients had their answers (52 of 26,525 in the issue's run).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.upstreams import FakeUpstream
from tests.harness import make_settings
from toolwatch.demo.script import Reply
from toolwatch.proxy.app import make_app
from toolwatch.schemas.exchange import Exchange

BLOCK = 0.3


class SlowSink:
    def __init__(self) -> None:
        self.done_at: list[float] = []
        self.exchanges: list[Exchange] = []

    def append(self, exchange: Exchange, request: bytes, response: bytes) -> bool:
        time.sleep(BLOCK)  # blocks the proxy's event loop, as a slow write would
        self.exchanges.append(exchange)
        self.done_at.append(time.monotonic())
        return True


@pytest.fixture
async def proxy(tmp_path: Path, store_path: Path, fake: FakeUpstream) -> AsyncIterator[tuple[str, SlowSink]]:
    sink = SlowSink()
    settings = make_settings(store_path, tmp_path / "spool", fake.url, parse_limit=2048, connect_timeout=0.5)
    runner = web.AppRunner(make_app(settings, sink=sink))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", sink
    finally:
        await runner.cleanup()


async def whole_answer_at(url: str, body: bytes) -> tuple[int, float]:
    async with aiohttp.ClientSession() as s, s.post(url, data=body, headers={"content-type": "application/json"}) as r:
        await r.read()
        return r.status, time.monotonic()


@pytest.mark.parametrize(
    ("stream", "reply"),
    [
        (False, Reply(text="json body")),
        (True, Reply(text="an SSE stream, chunk by chunk", chunk_size=7)),
        (False, Reply(text="x" * 5000)),  # longer than the parse limit: streamed back, its length known
    ],
    ids=["json", "sse", "known-length-stream"],
)
async def test_the_exchange_is_spooled_before_the_answer_is_complete(
    proxy: tuple[str, SlowSink], fake: FakeUpstream, stream: bool, reply: Reply
) -> None:
    url, sink = proxy
    fake.push(reply)
    body = b'{"model": "m", "stream": %s, "messages": [{"role": "user", "content": "hi"}]}' % (
        b"true" if stream else b"false"
    )
    status, got_at = await whole_answer_at(f"{url}/openai/v1/chat/completions", body)
    assert status == 200
    [done_at] = sink.done_at
    assert got_at >= done_at
    assert sink.exchanges[0].outcome == "ok"


async def test_an_error_answer_of_toolwatch_is_spooled_first(tmp_path: Path, store_path: Path) -> None:
    sink = SlowSink()
    settings = make_settings(store_path, tmp_path / "spool", "http://127.0.0.1:9", connect_timeout=0.5)
    runner = web.AppRunner(make_app(settings, sink=sink))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        status, got_at = await whole_answer_at(f"http://127.0.0.1:{runner.addresses[0][1]}/openai/v1/x", b"{}")
    finally:
        await runner.cleanup()
    assert status == 502
    assert got_at >= sink.done_at[0] and sink.exchanges[0].outcome == "connect_error"
