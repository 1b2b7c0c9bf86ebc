"""The batch handed to sinks, and the in-memory sink used as a test double."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

from toolwatch.schemas.records import Body, LlmCall, ToolCall, ToolResult
from toolwatch.store.sink import Batch, MemorySink, RecordSink
from toolwatch.store.writer import ClickHouseSink

TS = datetime(2025, 1, 1, tzinfo=UTC)


def call(n: int) -> LlmCall:
    return LlmCall(
        call_id=uuid.UUID(int=n),
        ts=TS,
        upstream="openai",
        api="openai",
        endpoint="chat_completions",
        method="POST",
        path="/v1/chat/completions",
        model="m",
    )


def tool_call(n: int) -> ToolCall:
    return ToolCall(
        tool_call_uid=uuid.UUID(int=1000 + n),
        call_id=uuid.UUID(int=n),
        ts=TS,
        upstream="openai",
        model="m",
        call_index=0,
        tool_call_id=f"c{n}",
        name="f",
        raw_arguments="{}",
    )


def result(n: int) -> ToolResult:
    return ToolResult(
        result_uid=uuid.UUID(int=2000 + n),
        call_id=uuid.UUID(int=n),
        ts=TS,
        upstream="openai",
        tool_call_id=f"c{n}",
        content="x",
        content_bytes=1,
    )


def body(n: int) -> Body:
    return Body(call_id=uuid.UUID(int=n), ts=TS, request_body=b"{}", response_body=b"{}")


def full_batch(n: int) -> Batch:
    return Batch([call(n)], [tool_call(n), tool_call(n + 100)], [result(n)], [body(n)])


def test_empty_batch() -> None:
    b = Batch()
    assert b.rows() == 0
    assert b.tables() == {"llm_calls": [], "tool_calls": [], "tool_results": [], "bodies": []}


def test_rows_counts_every_table() -> None:
    assert full_batch(1).rows() == 5


def test_tables_are_named_after_the_store_tables_and_are_copies() -> None:
    b = full_batch(1)
    tables = b.tables()
    assert list(tables) == ["llm_calls", "tool_calls", "tool_results", "bodies"]
    assert tables["tool_calls"] == b.tool_calls
    tables["llm_calls"].clear()
    assert len(b.llm_calls) == 1  # the sink cannot empty the recorder's batch


def test_batches_do_not_share_lists() -> None:
    a, b = Batch(), Batch()
    a.llm_calls.append(call(1))
    assert b.llm_calls == []


def test_memory_sink_keeps_batches_in_order_and_merges_them() -> None:
    sink = MemorySink()
    sink.write(full_batch(1))
    sink.write(Batch([call(2)]))
    assert len(sink.batches) == 2
    merged = sink.all()
    assert [c.call_id.int for c in merged.llm_calls] == [1, 2]
    assert merged.rows() == 6
    assert sink.all().rows() == 6  # merging does not consume or alter what was written
    assert sink.batches[1].rows() == 1
    sink.shutdown()


def test_memory_sink_is_safe_across_threads() -> None:
    sink = MemorySink()

    def writer(base: int) -> None:
        for i in range(200):
            sink.write(Batch([call(base + i)]))

    threads = [threading.Thread(target=writer, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sink.batches) == 800
    assert len({c.call_id for c in sink.all().llm_calls}) == 800


def test_both_sinks_follow_the_protocol() -> None:
    for cls in (MemorySink, ClickHouseSink):
        for name in ("write", "shutdown"):
            assert callable(getattr(cls, name)), (cls, name)
    sink: RecordSink = MemorySink()  # checked by mypy; at runtime: the double is usable where a sink is
    sink.write(Batch())
