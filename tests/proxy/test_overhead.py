"""The one header toolwatch adds: ``toolwatch-overhead-ms``, the time the proxy itself added before the
answer's headers left, on every proxied answer (JSON, SSE, toolwatch's own 502), and none when turned off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.upstreams import FakeUpstream
from tests.harness import Harness, make_settings

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def answer(url: str, stream: bool = False) -> tuple[int, aiohttp.typedefs.LooseHeaders]:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{url}/openai/v1/chat/completions", json={**BODY, "stream": stream}) as r:
            await r.read()
            return r.status, r.headers


@pytest.fixture
async def off(store_path: Path, tmp_path: Path, fake: FakeUpstream) -> AsyncIterator[Harness]:
    h = Harness(make_settings(store_path, tmp_path / "spool", fake.url, overhead_header=False))
    await h.start()
    yield h
    await h.close()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_every_answer_carries_the_overhead(tw: Harness, stream: bool) -> None:
    status, headers = await answer(tw.url, stream)
    assert status == 200
    value = headers["toolwatch-overhead-ms"]  # type: ignore[index]
    assert float(value) >= 0 and value == f"{float(value):.2f}"


async def test_toolwatchs_own_error_carries_it_too(store_path: Path, tmp_path: Path) -> None:
    h = Harness(make_settings(store_path, tmp_path / "spool", "http://127.0.0.1:9", connect_timeout=0.5))
    await h.start()
    try:
        status, headers = await answer(h.url)
    finally:
        await h.close()
    assert status == 502 and float(headers["toolwatch-overhead-ms"]) >= 0  # type: ignore[index]


async def test_turned_off_it_is_absent(off: Harness) -> None:
    for stream in (False, True):
        status, headers = await answer(off.url, stream)
        assert status == 200 and "toolwatch-overhead-ms" not in headers  # type: ignore[operator]


async def test_the_overhead_is_observed_per_upstream(tw: Harness) -> None:
    await answer(tw.url)
    async with aiohttp.ClientSession() as s, s.get(tw.url + "/metrics") as r:
        text = await r.text()
    assert 'toolwatch_proxy_overhead_seconds_count{upstream="openai"} 1.0' in text
    assert "toolwatch_records_dropped_total 0.0" in text
