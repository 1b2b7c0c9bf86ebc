"""The analyzer runner: SQL files run with bound parameters, results as JSON-ready rows."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from toolwatch.analyzers import runner
from toolwatch.analyzers.runner import jsonable
from toolwatch.schemas.records import LlmCall, ToolCall
from toolwatch.store.client import open_client
from toolwatch.store.migrate import migrate
from toolwatch.store.sink import Batch
from toolwatch.store.writer import insert_batch

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)  # inside the TTL


@pytest.fixture
def client(store_path: Path) -> Iterator[Client]:
    c = open_client(f"chdb://{store_path}", f"t_{uuid.uuid4().hex[:12]}")
    try:
        migrate(c)
        yield c
    finally:
        c.close()


def call(n: int, **over: Any) -> LlmCall:
    fields: dict[str, Any] = {
        "call_id": uuid.UUID(int=n),
        "ts": NOW + dt.timedelta(seconds=n),
        "upstream": "openai",
        "api": "openai",
        "endpoint": "chat_completions",
        "method": "POST",
        "path": "/v1/chat/completions",
        "model": f"model-{n}",
        "status": 200,
        **over,
    }
    return LlmCall(**fields)


def tool_call(n: int, index: int, arguments: str | None = "{}") -> ToolCall:
    return ToolCall(
        tool_call_uid=uuid.UUID(int=1000 * n + index),
        call_id=uuid.UUID(int=n),
        ts=NOW + dt.timedelta(seconds=n),
        upstream="openai",
        model=f"model-{n}",
        call_index=index,
        tool_call_id=f"call_{n}_{index}",
        name=f"tool_{index}",
        raw_arguments="{}" if arguments is not None else "{bad",
        arguments=arguments,
    )


def seed(client: Client) -> None:
    """Calls 1..4 one second apart; call 3 emitted tool calls 2, 0, 1 (inserted out of order)."""
    insert_batch(
        client,
        Batch(
            llm_calls=[call(1), call(2), call(3, tool_call_count=3), call(4)],
            tool_calls=[tool_call(3, 2), tool_call(3, 0, arguments=None), tool_call(3, 1), tool_call(1, 0)],
        ),
    )


def test_recent_calls_newest_first(client: Client) -> None:
    seed(client)
    rows = runner.run(client, "recent_calls", last=3)
    assert [r["call_id"] for r in rows] == [str(uuid.UUID(int=n)) for n in (4, 3, 2)]
    assert [r["model"] for r in rows] == ["model-4", "model-3", "model-2"]


def test_recent_calls_tool_calls_sorted_by_index(client: Client) -> None:
    seed(client)
    by_id = {r["call_id"]: r for r in runner.run(client, "recent_calls", last=10)}
    three = by_id[str(uuid.UUID(int=3))]
    assert [tc[0] for tc in three["tool_calls"]] == [0, 1, 2]
    assert [tc[1] for tc in three["tool_calls"]] == ["call_3_0", "call_3_1", "call_3_2"]
    assert [tc[2] for tc in three["tool_calls"]] == ["tool_0", "tool_1", "tool_2"]
    assert [bool(tc[4]) for tc in three["tool_calls"]] == [False, True, True]  # arguments parsed?
    assert by_id[str(uuid.UUID(int=2))]["tool_calls"] == []
    assert len(by_id[str(uuid.UUID(int=1))]["tool_calls"]) == 1


def test_recent_calls_rows_are_json_ready(client: Client) -> None:
    seed(client)
    [row] = runner.run(client, "recent_calls", last=1)
    json.dumps(row)  # no UUIDs, datetimes or tuples left
    assert dt.datetime.fromisoformat(row["ts"]) == NOW + dt.timedelta(seconds=4)
    assert row["status"] == 200 and row["outcome"] == "ok"
    assert row["input_tokens"] is None


def test_recent_calls_limit_is_bound(client: Client) -> None:
    seed(client)
    assert len(runner.run(client, "recent_calls", last=0)) == 0
    assert len(runner.run(client, "recent_calls", last=2)) == 2
    assert len(runner.run(client, "recent_calls", last=100)) == 4


def test_recent_calls_on_an_empty_store(client: Client) -> None:
    assert runner.run(client, "recent_calls", last=5) == []


def test_a_call_stored_twice_is_listed_once(client: Client) -> None:
    client.command("SYSTEM STOP MERGES llm_calls")  # the duplicate stays until a merge, which may be late
    seed(client)
    insert_batch(client, Batch(llm_calls=[call(4)]))  # a frame parsed again after a recorder restart
    rows = runner.run(client, "recent_calls", last=10)
    assert [r["call_id"] for r in rows] == [str(uuid.UUID(int=n)) for n in (4, 3, 2, 1)]


def test_a_call_stored_twice_does_not_hide_the_tool_calls_of_others(client: Client) -> None:
    client.command("SYSTEM STOP MERGES llm_calls")
    seed(client)
    insert_batch(client, Batch(llm_calls=[call(4)]))  # call 4 now has two unmerged rows
    rows = runner.run(client, "recent_calls", last=2)
    assert [r["call_id"] for r in rows] == [str(uuid.UUID(int=4)), str(uuid.UUID(int=3))]
    assert len(rows[1]["tool_calls"]) == 3


def test_sql_files_are_loaded_from_the_package() -> None:
    text = runner.sql("recent_calls")
    assert "{last:UInt32}" in text
    with pytest.raises(FileNotFoundError):
        runner.sql("no_such_analyzer")


# -- jsonable --------------------------------------------------------------------------------------


def test_jsonable_uuid() -> None:
    u = uuid.UUID("01994d0a-4c1a-7e3b-9f00-0123456789ab")
    assert jsonable(u) == "01994d0a-4c1a-7e3b-9f00-0123456789ab"


def test_jsonable_naive_datetime_is_utc() -> None:
    assert jsonable(dt.datetime(2025, 1, 2, 3, 4, 5, 6000)) == "2025-01-02T03:04:05.006000+00:00"


def test_jsonable_aware_datetime_keeps_its_offset() -> None:
    tz = dt.timezone(dt.timedelta(hours=2))
    assert jsonable(dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=tz)) == "2025-01-02T03:04:05+02:00"


def test_jsonable_date() -> None:
    assert jsonable(dt.date(2025, 1, 2)) == "2025-01-02"


def test_jsonable_containers_recursively() -> None:
    u = uuid.UUID(int=1)
    value = {1: (u, [dt.date(2025, 1, 1), (b"ok",)]), "n": {"x": float("nan")}}
    assert jsonable(value) == {"1": [str(u), ["2025-01-01", ["ok"]]], "n": {"x": None}}


def test_jsonable_bytes_never_fail() -> None:
    assert jsonable("é".encode()) == "é"
    assert jsonable(b"\xff") == "\ufffd"


@pytest.mark.parametrize("value", [None, 0, -3, 1.5, float("inf"), "text", True])
def test_jsonable_plain_values_pass_through(value: Any) -> None:
    assert jsonable(value) == value
