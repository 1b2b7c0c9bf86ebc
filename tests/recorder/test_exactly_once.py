"""Exactly once in the store: a batch's deduplication token follows from its place in the spool, a
restarted recorder rebuilds the same batch with the same token, a retry resumes at the table that
failed, and rows the store refuses while it is up are isolated and set aside, never retried forever.

``MemorySink`` drops a block whose token it has seen, as ClickHouse does with a deduplication window, so
every count here is what ``count()`` without ``FINAL`` would say.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.recorder.test_loop import LATER, Spool, encode, exchange, recorder, request, response
from toolwatch.spool.deadletter import DeadLetters
from toolwatch.spool.reader import INTENT, SpoolReader
from toolwatch.store.sink import Batch, MemorySink


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool")


def with_calls(*ns: int) -> list[bytes]:
    """Frames whose response makes one tool call and whose request carries one new result."""
    return [encode(exchange(n), request((f"prev_{n}",)), response(f"call_{n}")) for n in ns]


def counts(sink: MemorySink) -> tuple[int, int, int]:
    merged = sink.all()
    return len(merged.llm_calls), len(merged.tool_calls), len(merged.tool_results)


def test_the_token_is_the_spool_range_and_stable(spool: Spool) -> None:
    spool.add(*with_calls(0, 1))
    tokens = []
    for _ in range(2):  # two recorders over the same uncommitted spool fix the same batch
        rec = recorder(spool, MemorySink())
        rec.reader.poll()
        tokens.append(rec.reader.fix_batch())
    assert tokens[0] == tokens[1] and len(tokens[0]) == 32
    other = Spool(spool.directory.parent / "other")
    other.add(*with_calls(0, 1))  # the same bytes in another spool: another token
    rec = recorder(other, MemorySink())
    rec.reader.poll()
    assert rec.reader.fix_batch() != tokens[0]


def test_a_crash_between_insert_and_checkpoint_replays_without_duplicates(
    spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = MemorySink()
    spool.add(*with_calls(0, 1, 2))
    first = recorder(spool, sink, batch_rows=1)

    def crash() -> None:
        raise OSError("killed before the checkpoint")

    monkeypatch.setattr(first.reader, "commit", crash)
    first.step()  # written, not checkpointed
    assert counts(sink) == (3, 3, 3) and (spool.directory / INTENT).exists()
    second = recorder(spool, sink, batch_rows=1)  # memory cleared, same spool
    second.step()
    second.step()
    assert counts(sink) == (3, 3, 3)  # the replayed blocks carried the same tokens
    assert not (spool.directory / INTENT).exists()
    spool.add(*with_calls(3))  # and recording goes on after the replay
    second.step()
    assert counts(sink) == (4, 4, 4)


def test_a_restarted_recorder_rebuilds_exactly_the_unfinished_batch(spool: Spool) -> None:
    sink = MemorySink()
    spool.add(*with_calls(0, 1))
    first = recorder(spool, sink)
    first.step()
    first.reader.fix_batch()  # it was about to write [0, 1] when it died
    spool.add(*with_calls(2, 3))  # more arrived meanwhile
    second = recorder(spool, sink, batch_rows=1)
    second.step()
    assert [b.llm_calls[0].call_id.int - 1 for b in sink.batches if b.llm_calls] == [0]
    assert len(sink.batches[0].llm_calls) == 2  # the same two frames, not a batch reaching into [2, 3]
    second.step()
    second.step(now=time.monotonic() + LATER)
    assert counts(sink) == (4, 4, 4)


class BetweenTables(MemorySink):
    """Fails once after writing its first table, as a store that goes away mid-batch."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def write(self, batch: Batch) -> None:
        if not self.failed and batch.rows():
            self.failed = True
            only = Batch(llm_calls=batch.llm_calls, token=batch.token)
            super().write(only)
            batch.done.add("llm_calls")
            raise ConnectionError("store went away after llm_calls")
        super().write(batch)


def test_a_sink_failing_between_tables_is_retried_from_the_failed_table(spool: Spool) -> None:
    sink = BetweenTables()
    spool.add(*with_calls(0, 1))
    rec = recorder(spool, sink, batch_rows=1)
    rec.step()
    assert counts(sink) == (2, 0, 0) and rec.stats.write_errors == 1
    rec.step(now=time.monotonic() + LATER)
    assert counts(sink) == (2, 2, 2)


def test_a_sink_failing_between_tables_then_a_crash_still_writes_each_row_once(spool: Spool) -> None:
    sink = BetweenTables()
    spool.add(*with_calls(0, 1))
    recorder(spool, sink, batch_rows=1).step()  # llm_calls written, then the store went away; then it died
    recorder(spool, sink, batch_rows=1).step()
    assert counts(sink) == (2, 2, 2)


class Refusing(MemorySink):
    """A store that is up but refuses any block holding a poisoned row."""

    def __init__(self, poison: str) -> None:
        super().__init__()
        self.poison = poison
        self.refused = 0

    def reachable(self) -> bool:
        return True

    def write(self, batch: Batch) -> None:
        for table, rows in batch.tables().items():
            if table not in batch.done and any(self.poison in str(r.__dict__) for r in rows):
                self.refused += 1
                raise ValueError(f"Cannot parse input: poison in {table}")
        super().write(batch)


def test_rows_the_store_refuses_are_set_aside_and_the_rest_is_written(spool: Spool) -> None:
    sink = Refusing(poison="call_3")
    spool.add(*with_calls(*range(8)))
    rec = recorder(spool, sink, batch_rows=1)
    rec.step()
    calls, tool_calls, _results = counts(sink)
    assert calls == 8 and tool_calls == 7  # only the refused tool call is missing
    assert rec.stats.rows_set_aside == 1 and rec.stats.write_errors == 0
    [letter] = DeadLetters(spool.directory).all()
    assert letter.header["table"] == "tool_calls" and "poison" in letter.error
    assert letter.header["exchange_id"] == str(exchange(3).id)
    spool.add(*with_calls(8))  # the recorder is not wedged
    rec.step()
    assert counts(sink)[0] == 9


def test_isolating_refused_rows_is_repeatable_after_a_crash(spool: Spool) -> None:
    sink = Refusing(poison="call_5")
    spool.add(*with_calls(*range(8)))
    first = recorder(spool, sink, batch_rows=1)
    original = first.reader.commit
    first.reader.commit = lambda: (_ for _ in ()).throw(OSError("died"))  # type: ignore[method-assign]
    first.step()
    first.reader.commit = original  # type: ignore[method-assign]
    second = recorder(spool, sink, batch_rows=1)
    second.step()
    assert counts(sink)[:2] == (8, 7)  # the halves written the first time were dropped the second


def test_a_store_that_is_down_is_not_mistaken_for_a_refusal(spool: Spool) -> None:
    class Down(MemorySink):
        def reachable(self) -> bool:
            return False

        def write(self, batch: Batch) -> None:
            raise ConnectionError("connection refused")

    spool.add(*with_calls(0))
    rec = recorder(spool, Down(), batch_rows=1)
    rec.step()
    assert rec.stats.rows_set_aside == 0 and rec.stats.write_errors == 1
    assert DeadLetters(spool.directory).all() == []
    assert rec.batch.rows() > 0  # kept for the retry


def test_a_stale_intent_is_ignored(spool: Spool) -> None:
    spool.add(*with_calls(0))
    rec = recorder(spool, MemorySink(), batch_rows=1)
    rec.step()  # written and committed
    (spool.directory / INTENT).write_text('{"ranges": {"w0-000000000001": [0, 10]}, "token": "x"}')
    reader = SpoolReader(spool.directory)
    assert reader.resume() is False  # its range does not start at the checkpoint
