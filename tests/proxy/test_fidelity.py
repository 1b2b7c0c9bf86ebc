"""Every byte and every outcome is true, checked with byte-level peers on both sides.

Regressions, each reproduced on the old main: HEAD answers lost their ``Content-Length``; a request body
above the parse limit (40 MiB) reached the upstream chunked, without its length; non-UTF-8 bytes in a
response header value were dropped (``caf\\xe9.json`` arrived as ``caf.json``); a non-SSE response was
buffered whole before its headers went out; an exception inside the proxy produced aiohttp's bare 500 and
was recorded as ``ok``; a stream whose last event had reached the client was recorded as
``client_aborted`` when the upstream closed late; capture buffers were kept after truncation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.raw import RawUpstream, canned, raw_request, read_request
from tests.harness import Harness, make_settings
from toolwatch.proxy.capture import Capture, FinalEvent

MiB = 1024 * 1024


async def harness(store_path: Path, tmp_path: Path, upstream: RawUpstream, **over: object) -> Harness:
    h = Harness(make_settings(store_path, tmp_path / "spool", upstream.url, **over))
    return await h.start()


def header(raw: bytes, name: bytes) -> bytes | None:
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


@pytest.fixture
async def big_upstream() -> AsyncIterator[RawUpstream]:
    async with RawUpstream(canned(b"HTTP/1.1 200 OK", [b"Content-Type: application/json"], b"x" * (40 * MiB))) as u:
        yield u


async def test_40_mib_bodies_keep_their_content_length_both_ways(
    store_path: Path, tmp_path: Path, big_upstream: RawUpstream
) -> None:
    tw = await harness(store_path, tmp_path, big_upstream)
    try:
        body = b"{" + b" " * (40 * MiB - 2) + b"}"
        head = b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
        status, answer = await raw_request(tw.url, head, body, timeout=120)
        assert status == 200
        [got] = big_upstream.requests
        assert header(got, b"content-length") == str(len(body)).encode()
        assert header(got, b"transfer-encoding") is None
        assert got.split(b"\r\n\r\n", 1)[1] == body
        assert header(answer, b"content-length") == str(40 * MiB).encode()
        assert header(answer, b"transfer-encoding") is None
        assert len(answer.split(b"\r\n\r\n", 1)[1]) == 40 * MiB
        await tw.flush(expect=1)
        [(parse_status, request_bytes)] = tw.query("SELECT parse_status, request_bytes FROM llm_calls")
        assert parse_status == "too_large" and request_bytes == len(body)
    finally:
        await tw.close()


async def test_head_keeps_content_length(store_path: Path, tmp_path: Path) -> None:
    async def respond(raw: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1234\r\n\r\n")
        await writer.drain()

    async with RawUpstream(respond) as upstream:
        tw = await harness(store_path, tmp_path, upstream)
        try:
            status, answer = await raw_request(tw.url, b"HEAD /openai/v1/files/f1 HTTP/1.1\r\nHost: x")
            assert status == 200
            assert header(answer, b"content-length") == b"1234"
        finally:
            await tw.close()


async def test_response_header_values_pass_through_as_bytes(store_path: Path, tmp_path: Path) -> None:
    headers = [b"Content-Type: application/json", b"Content-Disposition: attachment; filename=caf\xe9.json"]
    async with RawUpstream(canned(b"HTTP/1.1 200 OK", headers, b"{}")) as upstream:
        tw = await harness(store_path, tmp_path, upstream)
        try:
            _, answer = await raw_request(tw.url, b"GET /openai/v1/files/f1/content HTTP/1.1\r\nHost: x")
            assert header(answer, b"content-disposition") == b"attachment; filename=caf\xe9.json"
        finally:
            await tw.close()


async def test_request_header_values_pass_through_as_bytes(store_path: Path, tmp_path: Path) -> None:
    async with RawUpstream(canned(b"HTTP/1.1 200 OK", [], b"{}")) as upstream:
        tw = await harness(store_path, tmp_path, upstream)
        try:
            await raw_request(tw.url, b"GET /openai/v1/models HTTP/1.1\r\nHost: x\r\nX-Name: caf\xe9")
            assert header(upstream.requests[0], b"x-name") == b"caf\xe9"
        finally:
            await tw.close()


async def test_a_json_answer_streams_before_it_is_whole(store_path: Path, tmp_path: Path) -> None:
    """The upstream sends half its body and waits until the client has seen it: a proxy that buffers the
    whole body before sending headers would never let the client see anything."""
    client_saw_half = asyncio.Event()

    async def respond(raw: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n0123456789")
        await writer.drain()
        await asyncio.wait_for(client_saw_half.wait(), 10)
        writer.write(b"abcdefghij")
        await writer.drain()

    async with RawUpstream(respond) as upstream:
        tw = await harness(store_path, tmp_path, upstream)
        try:
            host, port = tw.url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /openai/v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            first = await asyncio.wait_for(reader.readexactly(10), 10)
            assert b"Content-Length: 20" in head and first == b"0123456789"
            client_saw_half.set()
            assert await asyncio.wait_for(reader.readexactly(10), 10) == b"abcdefghij"
            writer.close()
        finally:
            await tw.close()


async def test_a_request_body_streams_to_the_upstream_before_it_is_whole(store_path: Path, tmp_path: Path) -> None:
    upstream_saw_start = asyncio.Event()

    async def respond(raw: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        assert await reader.readexactly(5) == b"first"
        upstream_saw_start.set()
        rest = await reader.readexactly(int(header(head, b"content-length") or 0) - 5)
        assert rest == b"second"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    tw = Harness(make_settings(store_path, tmp_path / "spool", url))
    await tw.start()
    try:
        host, port = tw.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /openai/v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nConnection: close\r\n\r\nfirst")
        await writer.drain()
        await asyncio.wait_for(upstream_saw_start.wait(), 10)  # before the client sent the rest
        writer.write(b"second")
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer.startswith(b"HTTP/1.1 200")
        writer.close()
    finally:
        await tw.close()
        server.close()


async def test_a_completed_stream_closed_late_is_not_an_abort(store_path: Path, tmp_path: Path) -> None:
    """The client reads every chunk and [DONE], then goes; the upstream closes its side 0.5 s later."""
    events = [b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'] * 48 + [b"data: [DONE]\n\n"]

    async def respond(raw: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for event in events:
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
        await asyncio.sleep(0.5)  # then the end of the chunked body, late
        writer.write(b"0\r\n\r\n")

    async with RawUpstream(respond) as upstream:
        tw = await harness(store_path, tmp_path, upstream)
        try:
            host, port = tw.url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            body = b'{"model": "m", "stream": true, "messages": []}'
            writer.write(
                b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            seen = b""
            while b"data: [DONE]" not in seen:
                seen += await asyncio.wait_for(reader.read(65536), 10)
            writer.close()  # the SDK is done: it closes its side
            await tw.flush(expect=1)
            [(outcome,)] = tw.query("SELECT outcome FROM llm_calls")
            assert outcome == "ok"
        finally:
            await tw.close()


async def test_an_exception_inside_the_proxy_is_a_502_in_the_providers_shape(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with RawUpstream(canned(b"HTTP/1.1 200 OK", [b"Content-Type: application/json"], b"{}")) as upstream:
        tw = await harness(store_path, tmp_path, upstream)
        try:

            def broken(headers: object) -> object:
                raise KeyError("boom")

            monkeypatch.setattr("toolwatch.proxy.forward.response_headers", broken)
            head = b"POST /anthropic/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            status, answer = await raw_request(tw.url, head, b"{}")
            assert status == 502
            assert b'"type":"error"' in answer and b"KeyError" in answer  # Anthropic's error shape
            await tw.flush(expect=1)
            [(outcome, error)] = tw.query("SELECT outcome, error FROM llm_calls")
            assert outcome == "proxy_error" and "KeyError" in error
        finally:
            await tw.close()


def test_capture_buffers_are_released_once_truncated() -> None:
    capture = Capture(limit=10)
    capture.add(b"12345")
    capture.add(b"678901")  # past the limit
    assert capture.truncated and capture.parts == [] and capture.kept == 0
    capture.add(b"more")
    assert capture.parts == [] and capture.seen == 15 and capture.data() == b""


@pytest.mark.parametrize(
    "stream",
    [
        [b"data: {}\n\n", b"data: [DO", b"NE]\n\n"],  # split across chunks
        [b'event: message_stop\ndata: {"type":"message_stop"}\n\n'],
        [b'event: response.completed\ndata: {"type":"response.completed"}\n\n'],
        [b'data: {"candidates":[{"finishReason":"STOP"}]}\r\n\r\n'],
    ],
)
def test_the_final_event_of_each_provider_is_seen(stream: list[bytes]) -> None:
    final = FinalEvent()
    for chunk in stream:
        final.feed(chunk)
    assert final.seen


def test_no_final_event_in_an_unfinished_stream() -> None:
    final = FinalEvent()
    for chunk in (b'data: {"choices":[]}\n\n', b"data: [DO"):
        final.feed(chunk)
    assert not final.seen


async def test_reading_a_request_is_exact() -> None:
    """The helper the tests above read requests with keeps chunked bodies as sent."""
    reader = asyncio.StreamReader()
    reader.feed_data(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert (await read_request(reader)).endswith(b"3\r\nabc\r\n0\r\n\r\n")
