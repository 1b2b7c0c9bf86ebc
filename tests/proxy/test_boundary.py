"""No request picks the upstream: whatever the request target and ``Host`` say, the request goes to the
configured upstream, under its base URL, or nowhere.

Over real sockets, with raw bytes: a trap listener on 127.0.0.2 stands where an attacker would point the
proxy, and must see no connection at all; the configured upstream must receive exactly the path and body a
legitimate request sent.

Regression: ``POST http://@127.0.0.2:PORT/openai/v1/chat/completions`` used to send the request, key
included, to 127.0.0.2; and ``/%6fpenai/...`` was routed with a mis-sliced path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.raw import RawUpstream, canned, raw_request
from tests.harness import Harness, make_settings

OK = canned(b"HTTP/1.1 200 OK", [b"Content-Type: application/json"], b'{"ok": true}')
BODY = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}'


class Trap:
    """A listener on 127.0.0.2: any connection to it is a request sent where no configuration points."""

    def __init__(self) -> None:
        self.hits = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> Trap:
        async def hit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.hits += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\ntrapped")
            writer.close()

        self._server = await asyncio.start_server(hit, "127.0.0.2", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def trap() -> AsyncIterator[Trap]:
    t = await Trap().start()
    yield t
    await t.close()


@pytest.fixture
async def upstream() -> AsyncIterator[RawUpstream]:
    async with RawUpstream(OK) as u:
        yield u


@pytest.fixture
async def tw(store_path: Path, tmp_path: Path, upstream: RawUpstream) -> AsyncIterator[Harness]:
    h = Harness(make_settings(store_path, tmp_path / "spool", upstream.url), start_recorder=False)
    await h.start()
    try:
        yield h
    finally:
        await h.close()


def head(target: bytes, host: bytes = b"127.0.0.1", *extra: bytes) -> bytes:
    lines = [b"POST " + target + b" HTTP/1.1", b"Host: " + host, b"X-Api-Key: sk-canary", *extra]
    return b"\r\n".join(lines)


def received_path(raw: bytes) -> bytes:
    return raw.split(b"\r\n", 1)[0].split(b" ")[1]


def received_body(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[1]


async def test_the_reported_absolute_forms_go_nowhere(tw: Harness, trap: Trap, upstream: RawUpstream) -> None:
    for target in (
        b"http://@127.0.0.2:%d/openai/v1/chat/completions" % trap.port,
        b"http://127.0.0.2:%d/openai/v1/chat/completions" % trap.port,
        b"http://x@127.0.0.2:%d/anthropic/v1/messages" % trap.port,
        b"//127.0.0.2:%d/openai/v1/chat/completions" % trap.port,
    ):
        status, _ = await raw_request(tw.url, head(target), BODY)
        assert status in (400, 404), target
    assert trap.hits == 0 and upstream.requests == []


async def test_an_encoded_mount_is_routed_with_the_right_path(tw: Harness, upstream: RawUpstream) -> None:
    status, _ = await raw_request(tw.url, head(b"/%6fpenai/v1/chat/completions?x=%2F"), BODY)
    assert status == 200
    [raw] = upstream.requests
    assert received_path(raw) == b"/v1/chat/completions?x=%2F"
    assert received_body(raw) == BODY


@pytest.mark.parametrize(
    "target",
    [b"/openai/../anthropic/v1/messages", b"/openai/v1/%2e%2e/x", b"/openai/%2E%2e%2Fadmin", b"/openai/v1/./x"],
)
async def test_dot_segments_are_refused(tw: Harness, upstream: RawUpstream, target: bytes) -> None:
    status, _ = await raw_request(tw.url, head(target), BODY)
    assert status == 400
    assert upstream.requests == []


target_parts = st.lists(
    st.sampled_from(
        ["openai", "anthropic", "v1", "chat", "completions", "..", ".", "%2e%2e", "%2f", "", "%6fpenai", "@", ":", "x"]
    ),
    min_size=1,
    max_size=6,
)
prefixes = st.sampled_from(["/", "//", "http://127.0.0.2:{port}/", "http://@127.0.0.2:{port}/", "*", "http:/"])
hosts = st.sampled_from([b"127.0.0.2", b"evil.example", b"127.0.0.1", b"[::1]", b"localhost:1", b"127.0.0.2:1"])


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=prefixes, parts=target_parts, host=hosts)
async def test_no_target_or_host_reaches_another_listener(
    tw: Harness, trap: Trap, upstream: RawUpstream, prefix: str, parts: list[str], host: bytes
) -> None:
    before = len(upstream.requests)
    target = (prefix.format(port=trap.port) + "/".join(parts)).encode()
    status, _ = await raw_request(tw.url, head(target, host), BODY)
    assert trap.hits == 0
    if len(upstream.requests) > before:  # forwarded: then only below the configured base, body intact
        raw = upstream.requests[-1]
        assert received_path(raw).startswith(b"/") and not received_path(raw).startswith(b"//127.0.0.2")
        assert received_body(raw) == BODY
        assert status == 200
    # and a legitimate request right after gets exactly its bytes through
    status, _ = await raw_request(tw.url, head(b"/openai/v1/chat/completions?a=1%202"), BODY)
    assert status == 200
    assert received_path(upstream.requests[-1]) == b"/v1/chat/completions?a=1%202"
    assert received_body(upstream.requests[-1]) == BODY
