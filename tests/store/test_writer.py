"""The ClickHouse sink: a Batch goes in one insert per table and reads back field for field."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.harness import make_settings
from toolwatch.schemas.records import Body, LlmCall, ToolCall, ToolResult
from toolwatch.store.handle import StoreHandle
from toolwatch.store.sessions import COLUMNS as SESSION_COLUMNS
from toolwatch.store.sessions import SessionUpkeep
from toolwatch.store.sink import TABLES, Batch
from toolwatch.store.writer import ClickHouseSink, insert_batch, insert_rows

# recent (older rows would be past the TTL and dropped on insert), to the millisecond as stored
TS = datetime.now(UTC).replace(microsecond=250000) - timedelta(hours=1)
CALL_ID = uuid.UUID("01994d0a-4c1a-7e3b-9f00-0123456789ab")


def full_call(**over: Any) -> LlmCall:
    fields: dict[str, Any] = {
        "call_id": CALL_ID,
        "ts": TS,
        "upstream": "openai",
        "api": "openai",
        "endpoint": "chat_completions",
        "method": "POST",
        "path": "/v1/chat/completions",
        "model_requested": "gpt-4.1",
        "model_returned": "gpt-4.1-2025-04-14",
        "model": "gpt-4.1-2025-04-14",
        "stream": True,
        "status": 200,
        "outcome": "ok",
        "error": None,
        "parse_status": "parse_error",
        "parse_error": "request: x",
        "finish_reason": "tool_calls",
        "response_id": "chatcmpl-1",
        "input_tokens": 60,
        "cache_read_tokens": 40,
        "cache_write_tokens": None,
        "output_tokens": 7,
        "latency_ms": 812.5,
        "ttfb_ms": None,
        "request_bytes": 1234,
        "response_bytes": 567,
        "declared_tools": ["get_weather", "東京"],
        "tool_schemas": ['{"type":"object"}', ""],
        "tool_call_count": 2,
        "tool_result_count": 1,
        "prior_tool_call_ids": ["call_prev"],
        "message_count": 3,
        "text_chars": 9,
        "session_id": "s",
        "agent": "a",
        "user_id": "u",
        "properties": {"env": "ci", "ü": "ß"},
        "request_id": "req_1",
    }
    fields.update(over)
    return LlmCall(**fields)


def batch() -> Batch:
    return Batch(
        llm_calls=[full_call()],
        tool_calls=[
            ToolCall(
                tool_call_uid=uuid.UUID(int=10),
                call_id=CALL_ID,
                ts=TS,
                upstream="openai",
                model="m",
                session_id="s",
                agent="a",
                call_index=0,
                tool_call_id="call_a",
                name="get_weather",
                raw_arguments='{"city": "Paris"}',
                arguments='{"city":"Paris"}',
            ),
            ToolCall(
                tool_call_uid=uuid.UUID(int=11),
                call_id=CALL_ID,
                ts=TS,
                upstream="openai",
                model="m",
                call_index=1,
                tool_call_id="call_b",
                name="get_weather",
                raw_arguments='{"city',
                arguments=None,
            ),
        ],
        tool_results=[
            ToolResult(
                result_uid=uuid.UUID(int=20),
                call_id=CALL_ID,
                ts=TS,
                upstream="openai",
                tool_call_id="call_prev",
                content="sunny, 21°C",
                content_bytes=13,
                truncated=True,
                is_error=None,
            ),
            ToolResult(
                result_uid=uuid.UUID(int=21),
                call_id=CALL_ID,
                ts=TS,
                upstream="anthropic",
                tool_call_id="toolu_1",
                content="",
                content_bytes=0,
                is_error=True,
            ),
        ],
        bodies=[
            Body(
                call_id=CALL_ID,
                ts=TS,
                request_body=b'{"model":"gpt-4.1"}',
                response_body=b"\x1f\x8b\x08\xff\x00",
                request_truncated=False,
                response_truncated=True,
            ),
        ],
    )


@pytest.fixture
def handle(store_path: Path, tmp_path: Path) -> Iterator[StoreHandle]:
    h = StoreHandle(make_settings(store_path, tmp_path / "spool"))
    try:
        yield h
    finally:
        h.close()


def read_back(handle: StoreHandle, model: type[BaseModel], table: str, order: str) -> list[BaseModel]:
    """Rows of ``table`` as records again: timestamps come back as naive UTC, strings as bytes where asked."""
    binary = {name: "bytes" for name, f in model.model_fields.items() if f.annotation in (bytes, "bytes")}

    def run(c: Any) -> list[BaseModel]:
        cols = ", ".join(model.model_fields)
        r = c.query(f"SELECT {cols} FROM {table} ORDER BY {order}", column_formats=binary)
        out = []
        for row in r.result_rows:
            values = dict(zip(r.column_names, row, strict=True))
            for k, v in values.items():
                if isinstance(v, datetime) and v.tzinfo is None:
                    values[k] = v.replace(tzinfo=UTC)
            out.append(model(**values))
        return out

    return handle.run(run)


def to_ms(records: list[Any]) -> list[Any]:
    """The records as stored: DateTime64(3) keeps milliseconds."""

    def cut(v: Any) -> Any:
        return v.replace(microsecond=v.microsecond // 1000 * 1000) if isinstance(v, datetime) else v

    return [r.model_copy(update={k: cut(v) for k, v in r.__dict__.items()}) for r in records]


def test_batch_reads_back_equal(handle: StoreHandle) -> None:
    b = batch()
    ClickHouseSink(handle).write(b)
    assert read_back(handle, LlmCall, "llm_calls", "call_id") == to_ms(b.llm_calls)
    assert read_back(handle, ToolCall, "tool_calls", "call_index") == to_ms(b.tool_calls)
    assert read_back(handle, ToolResult, "tool_results", "result_uid") == to_ms(b.tool_results)
    assert read_back(handle, Body, "bodies", "call_id") == to_ms(b.bodies)


def test_binary_bodies_are_stored_byte_for_byte(handle: StoreHandle) -> None:
    ClickHouseSink(handle).write(batch())
    rows = handle.run(lambda c: c.query("SELECT hex(response_body) FROM bodies").result_rows)
    assert rows == [("1F8B08FF00",)]


def test_timestamps_are_stored_as_utc_instants(handle: StoreHandle) -> None:
    local = TS.astimezone(timezone(timedelta(hours=2)))
    ClickHouseSink(handle).write(Batch(llm_calls=[full_call(ts=local)]))
    rows = handle.run(lambda c: c.query("SELECT formatDateTime(ts, '%F %T', 'UTC') FROM llm_calls").result_rows)
    assert rows == [(TS.strftime("%Y-%m-%d %H:%M:%S"),)]


def test_empty_tables_are_skipped(handle: StoreHandle) -> None:
    ClickHouseSink(handle).write(Batch(llm_calls=[full_call()]))
    counts = handle.run(
        lambda c: [c.query(f"SELECT count() FROM {t}").result_rows[0][0] for t in ("llm_calls", "tool_calls")]
    )
    assert counts == [1, 0]
    ClickHouseSink(handle).write(Batch())  # nothing at all: no error


def test_insert_batch_with_a_client(handle: StoreHandle) -> None:
    handle.run(lambda c: insert_batch(c, batch()))
    assert handle.run(lambda c: c.query("SELECT count() FROM tool_results").result_rows) == [(2,)]


def test_a_refused_insert_raises_and_marks_the_store_unreachable(handle: StoreHandle) -> None:
    sink = ClickHouseSink(handle)
    sink.write(Batch(llm_calls=[full_call()]))  # opens and migrates
    handle.run(lambda c: c.command("DROP TABLE tool_calls"))
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises, the recorder retries
        sink.write(batch())
    assert handle.reachable is False and handle.errors == 1
    assert handle.last_error


def test_shutdown_closes_the_store(handle: StoreHandle) -> None:
    sink = ClickHouseSink(handle)
    sink.write(Batch(llm_calls=[full_call()]))
    first = handle.client()
    sink.shutdown()
    assert handle.client() is not first  # reopened on demand after close


def awkward_batch() -> Batch:
    """Values where a format could differ: times (offsets, no zone, the last microsecond), nulls, empty and
    large strings, non-ASCII, the largest UInt64, maps, arrays, bodies that are not UTF-8 or run past 16 KiB."""
    odd = timezone(timedelta(hours=-7, minutes=-30))
    times = [TS.replace(microsecond=999999), TS.astimezone(odd), TS.replace(tzinfo=None), TS.replace(microsecond=1)]
    calls = [
        full_call(call_id=uuid.UUID(int=100 + i), ts=ts, error=err, tool_sigs=sigs, properties=props, ttfb_ms=ttfb)
        for i, (ts, err, sigs, props, ttfb) in enumerate(
            [
                (times[0], None, [2**64 - 1, 0], {}, 0.1),
                (times[1], "é\n\t\"'\\\x00\x1f☔𝄞", [], {"k": ""}, None),
                (times[2], "", [1], {"": "v", "東京": "🌤️"}, 1e-300),
                (times[3], "x" * 70_000, [5, 5], {"a": "b"}, 12.0),
            ]
        )
    ]
    calls.append(full_call(call_id=uuid.UUID(int=200), model_requested=None, finish_reason=None, input_tokens=None))
    b = batch()
    results = [
        r.model_copy(update={"result_uid": uuid.UUID(int=300 + i), "classified_at": times[i % 4]})
        for i, r in enumerate(b.tool_results * 2)
    ]
    bodies = [
        Body(call_id=uuid.UUID(int=400 + i), ts=times[i % 4], request_body=req, response_body=resp)
        for i, (req, resp) in enumerate([(b"", b""), (b"\xff\xfe\x00", "é".encode() * 9000), (b"x" * 200_000, b"\n")])
    ]
    return Batch(llm_calls=calls, tool_calls=b.tool_calls, tool_results=results, bodies=bodies)


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local time zone that is not UTC (a time without a zone is local time to clickhouse-connect)."""
    monkeypatch.setenv("TZ", "Asia/Kathmandu")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_what_is_stored_is_what_clickhouse_connect_would_store(handle: StoreHandle, local_zone: None) -> None:
    """The same batch through ``insert_batch`` and through clickhouse-connect's own ``insert`` (the sink's
    former way) into a copy of each table: the rows read back are identical."""
    database = handle.settings.database
    b = awkward_batch()
    handle.run(lambda c: insert_batch(c, b))

    def reference(c: Any) -> None:
        c.command("CREATE DATABASE IF NOT EXISTS ref")
        for table, records in Batch(**{t: getattr(b, t) for t in TABLES}).tables().items():
            c.command(f"CREATE TABLE ref.{table} AS {database}.{table}")
            columns = list(type(records[0]).model_fields)
            c.insert(f"ref.{table}", [[r.__dict__[k] for k in columns] for r in records], column_names=columns)

    def rows(db: str, table: str) -> list[Any]:
        return handle.run(lambda c: c.query(f"SELECT * FROM {db}.{table} ORDER BY tuple(*)").result_rows)

    handle.run(reference)
    for table in TABLES:
        assert rows(database, table) == rows("ref", table) and len(rows("ref", table)) == len(getattr(b, table))


def test_session_rows_are_stored_as_clickhouse_connect_would_store_them(handle: StoreHandle, local_zone: None) -> None:
    b = awkward_batch()
    calls = [
        c.model_copy(update={"session_id": f"s{i % 2}", "tool_sigs": [i, 2**64 - 1]}) for i, c in enumerate(b.llm_calls)
    ]
    results = [
        r.model_copy(update={"call_id": calls[0].call_id, "producer_call_id": calls[1].call_id}) for r in b.tool_results
    ]
    captured: list[list[list[Any]]] = []
    upkeep = SessionUpkeep(insert=lambda client, table, columns, rows, settings: captured.append(rows))
    handle.run(lambda c: upkeep.fold(c, calls, results))
    [rows] = captured
    assert len(rows) == 2
    handle.run(lambda c: insert_rows(c, "sessions", SESSION_COLUMNS, rows, {}))

    def reference(c: Any) -> None:
        c.command("CREATE DATABASE IF NOT EXISTS ref")
        c.command(f"CREATE TABLE ref.sessions AS {handle.settings.database}.sessions")
        c.insert("ref.sessions", rows, column_names=list(SESSION_COLUMNS))

    handle.run(reference)
    sql = "SELECT * EXCEPT updated_at FROM {}.sessions ORDER BY skey"
    mine = handle.run(lambda c: c.query(sql.format(handle.settings.database)).result_rows)
    assert mine == handle.run(lambda c: c.query(sql.format("ref")).result_rows) and len(mine) == 2
