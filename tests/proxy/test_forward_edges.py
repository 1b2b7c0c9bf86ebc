"""The forwarder on the edges: what reaches the upstream, bad bodies, broken streams, disconnects, timeouts."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import aiohttp.test_utils
import openai
import pytest
from yarl import URL

from tests.fakes.upstreams import FakeUpstream
from tests.harness import Harness, make_settings
from toolwatch.demo.script import Reply, ToolCallSpec


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        yield s


async def test_headers_path_and_query_reach_upstream_as_sent(tw: Harness, fake: FakeUpstream, http) -> None:  # type: ignore[no-untyped-def]
    headers = {
        "Authorization": "Bearer sk-abc",
        "Toolwatch-Session-Id": "sess-1",
        "Toolwatch-Agent": "planner",
        "Toolwatch-User-Id": "u-7",
        "Toolwatch-Property-Env": "prod",
        "Helicone-Property-Team": "search",
        "Connection": "keep-alive, X-Hop",
        "X-Hop": "drop me",
        "X-Custom": "keep me",
        "Host": "evil.example",
        "Content-Type": "application/json",
    }
    body = b'{"model": "gpt-q",  "messages": [{"role": "user", "content": "hi"}]}'  # odd spacing kept
    url = URL(f"{tw.url}/openai/v1/chat/completions?api-version=2024&x=%2F", encoded=True)
    async with http.post(url, data=body, headers=headers) as r:
        assert r.status == 200
    got = fake.received[-1]
    assert got.path == "/v1/chat/completions?api-version=2024&x=%2F"
    assert got.body == body
    assert got.headers["authorization"] == "Bearer sk-abc" and got.headers["x-custom"] == "keep me"
    assert got.headers["host"] == f"127.0.0.1:{fake.port}"  # the configured upstream, not the agent's Host
    for name in (
        "toolwatch-session-id",
        "toolwatch-agent",
        "toolwatch-property-env",
        "helicone-property-team",
        "x-hop",
    ):
        assert name not in got.headers
    await tw.flush()
    row = tw.rows("SELECT session_id, agent, user_id, properties, path FROM llm_calls")[0]
    assert row == {
        "session_id": "sess-1",
        "agent": "planner",
        "user_id": "u-7",
        "properties": {"Env": "prod", "Team": "search"},
        "path": "/v1/chat/completions",
    }


async def test_helicone_session_alias(tw: Harness, fake: FakeUpstream, http) -> None:  # type: ignore[no-untyped-def]
    h = {"Helicone-Session-Id": "h-1", "Helicone-User-Id": "hu"}
    async with http.post(
        f"{tw.url}/anthropic/v1/messages", json={"model": "c", "max_tokens": 1, "messages": []}, headers=h
    ):
        pass
    assert "helicone-session-id" not in fake.received[-1].headers
    await tw.flush()
    assert tw.rows("SELECT session_id, user_id FROM llm_calls") == [{"session_id": "h-1", "user_id": "hu"}]


async def test_non_json_body_is_forwarded_and_noted(tw: Harness, fake: FakeUpstream, http) -> None:  # type: ignore[no-untyped-def]
    fake.push(Reply(status=400, error_type="invalid_request_error", error_message="bad json"))
    async with http.post(f"{tw.url}/openai/v1/chat/completions", data=b"{not json") as r:
        assert r.status == 400
        assert b"bad json" in await r.read()
    assert fake.received[-1].body == b"{not json"
    await tw.flush()
    row = tw.rows("SELECT status, outcome, parse_status, parse_error FROM llm_calls")[0]
    assert row["status"] == 400 and row["outcome"] == "http_error"
    assert row["parse_status"] == "parse_error" and "request" in row["parse_error"]


async def test_body_over_parse_limit_streams_through_as_too_large(
    store_path: Path, tmp_path: Path, fake: FakeUpstream, http
) -> None:  # type: ignore[no-untyped-def]
    h = await Harness(make_settings(store_path, tmp_path / "spool", fake.url, parse_limit=4096)).start()
    try:
        big = b'{"model": "gpt-big", "messages": [{"role": "user", "content": "' + b"a" * 20000 + b'"}]}'
        async with http.post(f"{h.url}/openai/v1/chat/completions", data=big) as r:
            assert r.status == 200
            await r.read()
        assert fake.received[-1].body == big
        await h.flush()
        row = h.rows("SELECT parse_status, request_bytes, model FROM llm_calls")[0]
        assert row == {"parse_status": "too_large", "request_bytes": len(big), "model": ""}
    finally:
        await h.close()


async def test_broken_stream_is_passed_through_and_partial_record_kept(tw: Harness, fake: FakeUpstream) -> None:
    reply = Reply(tool_calls=(ToolCallSpec("lookup", '{"key": "value-long-enough"}'),), drop_after_bytes=700)
    fake.push(reply)
    async with openai.AsyncOpenAI(base_url=f"{tw.url}/openai/v1", api_key="k", max_retries=0) as client:
        with pytest.raises(openai.APIError):
            stream = await client.chat.completions.create(
                model="gpt-s", messages=[{"role": "user", "content": "x"}], stream=True
            )
            async for _ in stream:
                pass
    await tw.flush()
    row = tw.rows("SELECT outcome, status, stream, parse_status FROM llm_calls")[0]
    assert row["status"] == 200 and row["stream"] is True
    assert row["outcome"] == "upstream_error"


async def test_garbage_in_stream_is_passed_through(tw: Harness, fake: FakeUpstream) -> None:
    fake.push(Reply(text="fine", garbage=b"data: {oops\n\n"))
    async with openai.AsyncOpenAI(base_url=f"{tw.url}/openai/v1", api_key="k", max_retries=0) as client:
        with pytest.raises(json.JSONDecodeError):  # the SDK chokes on the garbage as it would directly
            stream = await client.chat.completions.create(
                model="gpt-g", messages=[{"role": "user", "content": "x"}], stream=True
            )
            async for _ in stream:
                pass
    await tw.flush()
    row = tw.rows("SELECT outcome, parse_status, text_chars FROM llm_calls")[0]
    assert row["outcome"] == "ok" and row["parse_status"] == "parse_error" and row["text_chars"] == len("fine")


async def test_client_disconnect_cancels_upstream_and_is_recorded(tw: Harness, fake: FakeUpstream, http) -> None:  # type: ignore[no-untyped-def]
    fake.push(Reply(text="slow", hang=True))
    task = asyncio.ensure_future(http.post(f"{tw.url}/openai/v1/chat/completions", json={"model": "m", "messages": []}))
    for _ in range(200):
        if fake.received:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await tw.flush(expect=1)
    row = tw.rows("SELECT outcome, status FROM llm_calls")[0]
    assert row == {"outcome": "client_aborted", "status": 0}


async def test_client_disconnect_mid_stream(tw: Harness, fake: FakeUpstream) -> None:
    fake.push(Reply(text="x" * 200, hang_after_bytes=300))
    reader, writer = await asyncio.open_connection("127.0.0.1", int(tw.url.rsplit(":", 1)[1]))
    body = b'{"model": "m", "stream": true, "messages": []}'
    writer.write(
        b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    await reader.read(100)
    writer.close()
    await writer.wait_closed()
    await tw.flush(expect=1)
    row = tw.rows("SELECT outcome, status FROM llm_calls")[0]
    assert row == {"outcome": "client_aborted", "status": 200}


async def test_first_byte_timeout_gives_504(store_path: Path, tmp_path: Path, fake: FakeUpstream) -> None:
    h = await Harness(make_settings(store_path, tmp_path / "spool", fake.url, first_byte_timeout=0.3)).start()
    fake.push(Reply(hang=True))
    try:
        async with openai.AsyncOpenAI(base_url=f"{h.url}/openai/v1", api_key="k", max_retries=0) as client:
            with pytest.raises(openai.APIStatusError) as info:
                await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert info.value.status_code == 504
        await h.flush()
        assert h.rows("SELECT outcome, status FROM llm_calls") == [{"outcome": "upstream_timeout", "status": 504}]
    finally:
        await h.close()


async def test_unknown_upstream_is_404_and_not_forwarded(tw: Harness, fake: FakeUpstream, http) -> None:  # type: ignore[no-untyped-def]
    async with http.post(f"{tw.url}/nowhere/v1/chat/completions", data=b"{}") as r:
        assert r.status == 404
    assert fake.received == []


async def test_gzip_response_passes_compressed_and_is_parsed(tw: Harness, fake: FakeUpstream, http) -> None:  # type: ignore[no-untyped-def]
    import gzip

    payload = {
        "id": "chatcmpl-z",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-z",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "zipped"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    raw = gzip.compress(json.dumps(payload).encode())
    fake.push(Reply(raw=raw, headers={"Content-Encoding": "gzip"}))
    async with http.post(f"{tw.url}/openai/v1/chat/completions", json={"model": "gpt-z", "messages": []}) as r:
        assert r.headers["content-encoding"] == "gzip"
        assert await r.read() == raw
    await tw.flush()
    assert tw.rows("SELECT model_returned, output_tokens, parse_status FROM llm_calls") == [
        {"model_returned": "gpt-z", "output_tokens": 1, "parse_status": "ok"}
    ]


async def test_access_log_has_no_query_or_credentials(tw: Harness, http, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    from toolwatch.proxy.app import AccessLogger

    logger = logging.getLogger("toolwatch.access.test")
    caplog.set_level(logging.INFO, logger="toolwatch.access.test")
    req = aiohttp.test_utils.make_mocked_request(
        "GET", "/gemini/v1beta/models?key=SECRET-KEY", headers={"Authorization": "Bearer SECRET-TOKEN"}
    )
    resp = aiohttp.web.Response(status=200, body=b"{}")
    AccessLogger(logger, "").log(req, resp, 0.01)
    assert "/gemini/v1beta/models" in caplog.text
    assert "SECRET" not in caplog.text
