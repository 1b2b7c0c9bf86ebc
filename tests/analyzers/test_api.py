"""The recorder's read API over a real loopback server: status fields, parameter errors as 400, analyzers
on an empty store, recent calls after the recorder wrote some, reclassification, and a store that is down."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.harness import make_settings
from toolwatch.analyzers.api import make_app
from toolwatch.recorder.build import BuildOptions
from toolwatch.recorder.loop import Recorder
from toolwatch.recorder.outcomes import Classifier
from toolwatch.recorder.reclassify import reclassify
from toolwatch.schemas.exchange import Exchange
from toolwatch.schemas.records import ToolResult
from toolwatch.spool.frame import encode
from toolwatch.spool.reader import SpoolReader
from toolwatch.spool.segments import SEALED, segment_name
from toolwatch.store.handle import StoreHandle
from toolwatch.store.sink import Batch
from toolwatch.store.writer import ClickHouseSink, insert_batch

QUOTA = Classifier.from_settings({"quota": r"(?i)quota exceeded"})


@dataclass
class Api:
    client: TestClient[Any, Any]
    store: StoreHandle
    recorder: Recorder
    spool: Path

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.client.get(path) as r:
            return r.status, await r.json()

    async def post(self, path: str) -> tuple[int, Any]:
        async with self.client.post(path) as r:
            return r.status, await r.json()


async def serve(settings: Any) -> tuple[TestClient[Any, Any], StoreHandle, Recorder]:
    settings.spool_path.mkdir(parents=True, exist_ok=True)
    store = StoreHandle(settings)
    recorder = Recorder(
        SpoolReader(settings.spool_path),
        ClickHouseSink(store),
        options=BuildOptions(store_bodies=False, classifier=QUOTA),
        batch_rows=1000,
        batch_interval=3600.0,
    )

    def reclassify_since(c: Any, since: dt.datetime) -> tuple[int, int]:
        done = reclassify(c, QUOTA, since)
        return done.examined, done.changed

    app = make_app(recorder, store, reclassify_since)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client, store, recorder


@pytest.fixture
async def api(store_path: Path, tmp_path: Path) -> AsyncIterator[Api]:
    settings = make_settings(store_path, tmp_path / "spool")
    client, store, recorder = await serve(settings)
    try:
        yield Api(client, store, recorder, settings.spool_path)
    finally:
        await client.close()
        store.close()


# --- /status ----------------------------------------------------------------------------------

STATUS_FIELDS = {
    "recorder_alive",
    "recorder_pid",
    "recorder_uptime_s",
    "store_reachable",
    "store_errors",
    "last_store_error",
    "spool_lag_bytes",
    "frames_read",
    "records_written",
    "calls_written",
    "tool_calls_written",
    "tool_results_written",
    "duplicate_results_skipped",
    "build_errors",
    "damaged_frames",
    "pending_batch_rows",
    "last_write_at",
}


async def test_status_of_a_fresh_recorder(api: Api) -> None:
    code, body = await api.get("/status")
    assert code == 200
    assert set(body) == STATUS_FIELDS
    assert body["recorder_alive"] is True
    assert body["recorder_pid"] == os.getpid()
    assert body["recorder_uptime_s"] >= 0
    assert body["store_reachable"] is False  # opened lazily: nothing asked for it yet
    assert body["last_store_error"] is None
    counters = (
        "store_errors",
        "spool_lag_bytes",
        "frames_read",
        "records_written",
        "calls_written",
        "tool_calls_written",
        "tool_results_written",
        "duplicate_results_skipped",
        "build_errors",
        "damaged_frames",
        "pending_batch_rows",
    )
    assert {k: body[k] for k in counters} == dict.fromkeys(counters, 0)
    assert body["last_write_at"] is None


async def test_status_reports_the_store_once_it_was_used(api: Api) -> None:
    assert (await api.get("/report"))[0] == 200
    code, body = await api.get("/status")
    assert code == 200 and body["store_reachable"] is True


async def test_status_reports_the_recorder_stats(api: Api) -> None:
    s = api.recorder.stats
    s.frames_read, s.write_errors, s.last_error, s.build_errors = 9, 2, "OperationalError: boom", 1
    s.calls_written, s.tool_calls_written, s.tool_results_written, s.records_written = 4, 3, 2, 9
    s.duplicate_results_skipped, s.last_write_at = 5, 1700000000.5
    code, body = await api.get("/status")
    assert code == 200
    assert body["frames_read"] == 9
    assert (body["store_errors"], body["last_store_error"], body["build_errors"]) == (2, "OperationalError: boom", 1)
    assert (body["calls_written"], body["tool_calls_written"], body["tool_results_written"]) == (4, 3, 2)
    assert (body["records_written"], body["duplicate_results_skipped"]) == (9, 5)
    assert body["last_write_at"] == 1700000000.5


# --- /calls -----------------------------------------------------------------------------------


def exchange(n: int, started: dt.datetime) -> Exchange:
    return Exchange(
        id=uuid.UUID(int=0xC0FFEE00 + n),
        started_at=started,
        upstream="openai",
        api="openai",
        method="POST",
        path="/v1/chat/completions",
        status=200,
        response_content_type="application/json",
    )


def chat(n: int) -> tuple[bytes, bytes]:
    request = {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": f"task {n}"}],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
    }
    call = {"id": f"call_{n}", "type": "function", "function": {"name": "lookup", "arguments": f'{{"n": {n}}}'}}
    response = {
        "id": f"chatcmpl-{n}",
        "model": "gpt-x-2026",
        "choices": [
            {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "tool_calls": [call]}}
        ],
    }
    return json.dumps(request).encode(), json.dumps(response).encode()


def write_segment(spool: Path, *frames: bytes) -> int:
    data = b"".join(frames)
    (spool / segment_name("w0", 1, SEALED)).write_bytes(data)
    return len(data)


async def test_calls_on_an_empty_store(api: Api) -> None:
    assert await api.get("/calls") == (200, [])


async def test_calls_lists_the_most_recent_calls_with_their_tool_calls(api: Api) -> None:
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    frames = [encode(exchange(n, t0 + dt.timedelta(seconds=n)), *chat(n)) for n in range(3)]
    size = write_segment(api.spool, *frames)

    code, body = await api.get("/status")
    assert code == 200 and body["spool_lag_bytes"] == size

    await asyncio.to_thread(api.recorder.step)
    code, body = await api.get("/status")
    assert (body["frames_read"], body["pending_batch_rows"]) == (3, 6)  # 3 calls, 3 tool calls
    assert await asyncio.to_thread(api.recorder.flush) is True

    code, rows = await api.get("/calls")
    assert code == 200
    assert [r["call_id"] for r in rows] == [str(uuid.UUID(int=0xC0FFEE00 + n)) for n in (2, 1, 0)]
    newest = rows[0]
    assert (newest["model"], newest["model_requested"], newest["status"]) == ("gpt-x-2026", "gpt-x", 200)
    assert (newest["endpoint"], newest["finish_reason"]) == ("chat_completions", "tool_calls")
    assert newest["tool_calls"] == [
        {
            "call_index": 0, "tool_call_id": "call_2", "name": "lookup", "raw_arguments": '{"n": 2}',
            "arguments": {"n": 2}, "malformed_kind": None, "outcome": "pending", "error_rule": None,
        }
    ]  # fmt: skip

    code, rows = await api.get("/calls?last=1")
    assert code == 200 and [r["call_id"] for r in rows] == [str(uuid.UUID(int=0xC0FFEE02))]

    code, body = await api.get("/status")
    assert (body["calls_written"], body["tool_calls_written"], body["records_written"]) == (3, 3, 6)
    assert body["store_reachable"] is True and body["last_write_at"] is not None


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("last=abc", "last must be an integer"),
        ("last=1.5", "last must be an integer"),
        ("last=", "last must be an integer"),
        ("last=0", "last must be between 1 and 10000"),
        ("last=-3", "last must be between 1 and 10000"),
        ("last=10001", "last must be between 1 and 10000"),
    ],
)
async def test_calls_with_a_bad_last_is_400(api: Api, query: str, error: str) -> None:
    assert await api.get(f"/calls?{query}") == (400, {"error": error})


# --- analyzers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/report",
        "/report?since=1h&model=gpt-x&agent=a&abandon=5m&cascade_run=4",
        "/sessions",
        "/sessions?failed=1&last=5",
        "/session?session=h:no-such-session",
    ],
)
async def test_analyzers_on_an_empty_store_answer_an_empty_list(api: Api, path: str) -> None:
    assert await api.get(path) == (200, [])


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/report?since=banana", "not an ISO-8601 time"),
        ("/report?until=tomorrow", "not an ISO-8601 time"),
        ("/report?since=2026-11-20T10:00:00Z&until=2026-11-20T09:00:00Z", "since must be before until"),
        ("/report?abandon=forever", "not a duration"),
        ("/report?cascade_run=1", "between 2 and 1000"),
        ("/report?cascade_run=three", "invalid literal"),
        ("/report?bogus=1", "unknown parameter(s) for report: bogus"),
        ("/report?since=1h&last=5", "unknown parameter(s) for report: last"),
        ("/sessions?last=0", "last must be between 1 and 10000"),
        ("/sessions?color=red", "unknown parameter(s) for sessions: color"),
        ("/session?session=", "a session id is required"),
        ("/session?session=h:x&model=m", "unknown parameter(s) for session: model"),
    ],
)
async def test_bad_analyzer_parameters_are_400(api: Api, path: str, error: str) -> None:
    code, body = await api.get(path)
    assert code == 400
    assert list(body) == ["error"] and error in body["error"]


async def test_session_without_an_id_is_400(api: Api) -> None:
    async with api.client.get("/session?since=1h") as r:
        assert r.status == 400
        assert "session id is required" in (await r.json())["error"]


async def test_only_the_known_analyzers_are_served(api: Api) -> None:
    for path in ("/steps", "/session_rows", "/recent_calls", "/nope"):
        async with api.client.get(path) as r:
            assert r.status == 404, path


# --- /reclassify ------------------------------------------------------------------------------


def result(content: str, rule: str, ts: dt.datetime) -> ToolResult:
    return ToolResult(
        result_uid=uuid.uuid4(),
        call_id=uuid.uuid4(),
        ts=ts,
        upstream="openai",
        tool_call_id=f"call_{uuid.uuid4().hex}",
        content=content,
        content_bytes=len(content),
        error_rule=rule,
        classified_at=ts,
    )


async def test_reclassify_on_an_empty_store(api: Api) -> None:
    assert await api.post("/reclassify") == (200, {"examined": 0, "changed": 0})


async def test_reclassify_applies_the_recorders_rules(api: Api) -> None:
    now = dt.datetime.now(dt.UTC)
    rows = [
        result("Daily QUOTA EXCEEDED for this key", "", now),  # the recorder's extra rule now fires
        result("Error: disk full", "", now),  # a default rule now fires
        result("42 rows", "", now),  # still ok
        result("fine now", "timed_out", now),  # an old verdict no rule supports any more
        result("Error: long ago", "", now - dt.timedelta(days=3)),  # outside ?since=2d
    ]
    await asyncio.to_thread(api.store.run, lambda c: insert_batch(c, Batch(tool_results=rows)))

    assert await api.post("/reclassify?since=2d") == (200, {"examined": 4, "changed": 3})
    latest = await asyncio.to_thread(
        api.store.run,
        lambda c: dict(
            c.query("SELECT content, argMax(error_rule, classified_at) FROM tool_results GROUP BY content").result_rows
        ),
    )
    assert latest == {
        "Daily QUOTA EXCEEDED for this key": "quota",
        "Error: disk full": "error_prefix",
        "42 rows": "",
        "fine now": "",
        "Error: long ago": "",
    }
    assert await api.post("/reclassify?since=2d") == (200, {"examined": 4, "changed": 0})
    assert await api.post("/reclassify") == (200, {"examined": 5, "changed": 1})  # 30 days by default


@pytest.mark.parametrize("query", ["since=banana", "since=0s", "since=2999-01-01T00:00:00Z"])
async def test_reclassify_with_a_bad_since_is_400(api: Api, query: str) -> None:
    code, body = await api.post(f"/reclassify?{query}")
    assert code == 400 and "error" in body


async def test_reclassify_is_post_only(api: Api) -> None:
    async with api.client.get("/reclassify") as r:
        assert r.status == 405


# --- a store that is down ---------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def down(tmp_path: Path) -> AsyncIterator[Api]:
    """The read API over a ClickHouse server URL where nothing listens."""
    store = f"http://127.0.0.1:{closed_port()}"
    settings = make_settings(tmp_path / "unused", tmp_path / "spool", store=store, store_timeout=2.0)
    client, store, recorder = await serve(settings)
    try:
        yield Api(client, store, recorder, settings.spool_path)
    finally:
        await client.close()
        store.close()


@pytest.mark.parametrize("path", ["/calls", "/report", "/sessions", "/session?session=h:x"])
async def test_queries_answer_503_while_the_store_is_down(down: Api, path: str) -> None:
    async with down.client.get(path) as r:
        assert r.status == 503
        assert r.content_type == "application/json"
        assert (await r.text()).startswith('{"error": "store unavailable: ')


async def test_the_503_body_is_json(down: Api) -> None:
    async with down.client.get("/calls") as r:
        assert r.status == 503
        body = json.loads(await r.text())
        assert body["error"].startswith("store unavailable: ")


async def test_reclassify_answers_503_while_the_store_is_down(down: Api) -> None:
    code, body = await down.post("/reclassify")
    assert code == 503
    assert body["error"].startswith("store unavailable: ")


async def test_status_reports_the_store_error(down: Api) -> None:
    assert (await down.get("/status"))[1]["last_store_error"] is None
    async with down.client.get("/report") as r:
        assert r.status == 503
    code, body = await down.get("/status")
    assert code == 200
    assert body["recorder_alive"] is True and body["store_reachable"] is False
    assert body["last_store_error"].startswith("StoreError: cannot open the store")
