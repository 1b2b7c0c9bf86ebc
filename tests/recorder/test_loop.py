"""The recorder loop over a real spool directory with in-memory sinks: batching, retries without loss or
duplicates, tool-result de-duplication, and draining on stop."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from toolwatch.recorder import loop as loop_module
from toolwatch.recorder.build import BuildOptions
from toolwatch.recorder.loop import Recorder
from toolwatch.schemas.exchange import Exchange
from toolwatch.spool.frame import encode
from toolwatch.spool.reader import CHECKPOINT, SpoolReader
from toolwatch.spool.segments import OPEN, SEALED, list_segments, segment_name
from toolwatch.store.sink import Batch, MemorySink

NO_BODIES = BuildOptions(store_bodies=False)
LATER = 10_000.0  # seconds: a "now" far enough ahead that any batch interval or backoff has passed


class FailingSink(MemorySink):
    """Refuses the first ``failures`` writes, then stores like MemorySink."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0

    def write(self, batch: Batch) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError(f"store down (attempt {self.attempts})")
        super().write(batch)


def exchange(n: int, upstream: str = "openai") -> Exchange:
    return Exchange(
        id=uuid.UUID(int=n + 1),
        started_at=datetime(2025, 1, 1, tzinfo=UTC),
        upstream=upstream,
        api="openai",
        method="POST",
        path="/v1/chat/completions",
        status=200,
        response_content_type="application/json",
    )


def request(tool_results: tuple[str, ...] = ()) -> bytes:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
    for call_id in tool_results:
        messages.append({"role": "tool", "tool_call_id": call_id, "content": f"result of {call_id}"})
    return json.dumps({"model": "m", "messages": messages}).encode()


def response(*tool_call_ids: str) -> bytes:
    calls = [{"id": cid, "type": "function", "function": {"name": "f", "arguments": "{}"}} for cid in tool_call_ids]
    message: dict[str, Any] = {"role": "assistant", "content": "ok"}
    if calls:
        message["tool_calls"] = calls
    return json.dumps({"id": "r", "model": "m", "choices": [{"index": 0, "message": message}]}).encode()


class Spool:
    """Writes sealed segments straight into a directory, as a proxy would."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.seq = 0

    def add(self, *frames: bytes) -> None:
        self.seq += 1
        (self.directory / segment_name("w0", self.seq, SEALED)).write_bytes(b"".join(frames))

    def plain(self, *ns: int) -> None:
        self.add(*(encode(exchange(n), request(), response()) for n in ns))

    def segments(self) -> int:
        return len(list_segments(self.directory))


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool")


def recorder(spool: Spool, sink: MemorySink, **kw: Any) -> Recorder:
    opts = {"options": NO_BODIES, "batch_rows": 1000, "batch_interval": 3600.0, **kw}
    return Recorder(SpoolReader(spool.directory), sink, **opts)


def call_ids(sink: MemorySink) -> list[int]:
    return [c.call_id.int - 1 for c in sink.all().llm_calls]


# -- batching --------------------------------------------------------------------------------------


def test_batch_written_when_it_reaches_batch_rows(spool: Spool) -> None:
    sink = MemorySink()
    rec = recorder(spool, sink, batch_rows=3)
    spool.plain(0, 1)
    assert rec.step() is True  # read two frames
    assert sink.batches == [] and rec.batch.rows() == 2
    assert rec.step() is False  # nothing new, not due
    spool.plain(2)
    rec.step()
    assert [len(b.llm_calls) for b in sink.batches] == [3]
    assert call_ids(sink) == [0, 1, 2]
    assert rec.batch.rows() == 0
    assert (rec.stats.frames_read, rec.stats.calls_written, rec.stats.records_written) == (3, 3, 3)
    assert rec.stats.last_write_at is not None


def test_batch_written_when_it_is_old_enough(spool: Spool) -> None:
    sink = MemorySink()
    rec = recorder(spool, sink, batch_interval=60.0)
    spool.plain(0)
    rec.step()
    assert sink.batches == []
    rec.step(now=time.monotonic() + LATER)
    assert call_ids(sink) == [0]


def test_rows_count_every_table(spool: Spool) -> None:
    sink = MemorySink()
    rec = recorder(spool, sink, options=BuildOptions(), batch_rows=5)
    # one call + two tool calls + one result + one body = 5 rows
    spool.add(encode(exchange(0), request(("call_x",)), response("call_a", "call_b")))
    rec.step()
    batch = sink.all()
    assert (len(batch.llm_calls), len(batch.tool_calls), len(batch.tool_results), len(batch.bodies)) == (1, 2, 1, 1)
    assert (rec.stats.tool_calls_written, rec.stats.tool_results_written, rec.stats.records_written) == (2, 1, 4)


def test_a_segment_sealed_after_its_frames_were_stored_is_deleted_while_idle(spool: Spool) -> None:
    sink = MemorySink()
    rec = recorder(spool, sink, batch_rows=1)
    path = spool.directory / segment_name("w0", 1, OPEN)
    path.write_bytes(encode(exchange(0), request(), response()))
    rec.step()
    assert call_ids(sink) == [0]
    path.rename(path.with_suffix(SEALED))  # the proxy seals it by age; no traffic follows
    for _ in range(3):
        rec.step(now=time.monotonic() + LATER)
    assert spool.segments() == 0


def test_commit_follows_a_successful_write(spool: Spool) -> None:
    sink = MemorySink()
    rec = recorder(spool, sink, batch_rows=1)
    spool.plain(0)
    spool.plain(1)
    rec.step()
    assert call_ids(sink) == [0, 1]
    assert spool.segments() == 0  # stored, so deleted
    assert (spool.directory / CHECKPOINT).exists()


# -- failures --------------------------------------------------------------------------------------


def test_nothing_is_committed_while_the_store_refuses(spool: Spool) -> None:
    sink = FailingSink(failures=1)
    rec = recorder(spool, sink, batch_rows=1)
    spool.plain(0, 1)
    assert rec.step() is True  # read, then the write failed
    assert sink.batches == [] and sink.attempts == 1
    assert spool.segments() == 1
    assert not (spool.directory / CHECKPOINT).exists()
    assert rec.reader.lag_bytes() > 0
    assert rec.stats.write_errors == 1
    assert rec.stats.last_error is not None and "store down" in rec.stats.last_error
    assert rec.stats.calls_written == 0


def test_no_reading_and_no_retry_before_the_backoff(spool: Spool) -> None:
    sink = FailingSink(failures=1)
    rec = recorder(spool, sink, batch_rows=1)
    spool.plain(0)
    rec.step()
    spool.plain(1)
    assert rec.step(now=time.monotonic()) is False  # still backing off
    assert sink.attempts == 1 and rec.stats.frames_read == 1


def test_backoff_grows_while_failing(spool: Spool) -> None:
    sink = FailingSink(failures=3)
    rec = recorder(spool, sink, batch_rows=1)
    spool.plain(0)
    rec.step()
    delays = [rec._backoff]
    for _ in range(2):
        rec.step(now=time.monotonic() + LATER)
        delays.append(rec._backoff)
    assert sink.attempts == 3
    assert delays[0] > 0 and delays[0] < delays[1] < delays[2]
    rec.step(now=time.monotonic() + LATER)
    assert call_ids(sink) == [0]
    assert rec._backoff == 0.0


def test_recovery_loses_nothing_and_duplicates_nothing(spool: Spool) -> None:
    sink = FailingSink(failures=2)
    rec = recorder(spool, sink, batch_rows=2)
    spool.plain(0, 1, 2)
    rec.step()
    spool.plain(3)  # arrives while the store is down: stays in the spool
    for _ in range(10):
        rec.step(now=time.monotonic() + LATER)
    spool.plain(4, 5)
    for _ in range(3):
        rec.step(now=time.monotonic() + LATER)
    assert sorted(call_ids(sink)) == [0, 1, 2, 3, 4, 5]
    assert call_ids(sink)[:3] == [0, 1, 2]  # the failed batch went first, whole
    assert rec.stats.write_errors == 2
    assert rec.stats.frames_read == 6
    assert spool.segments() == 0
    # a restarted recorder finds nothing left to do
    again = MemorySink()
    recorder(spool, again, batch_rows=1).step(now=time.monotonic() + LATER)
    assert again.batches == []


def test_restart_after_failed_writes_rereads_the_uncommitted_frames(spool: Spool) -> None:
    first = recorder(spool, FailingSink(failures=100), batch_rows=1)
    spool.plain(0, 1)
    first.step()
    sink = MemorySink()
    recorder(spool, sink, batch_rows=1).step()
    assert call_ids(sink) == [0, 1]


def test_a_checkpoint_that_cannot_be_saved_does_not_rewrite_the_batch(spool: Spool) -> None:
    sink = MemorySink()
    rec = recorder(spool, sink, batch_rows=1)
    spool.plain(0, 1)
    (spool.directory / "recorder.tmp").mkdir()  # the checkpoint cannot be saved (as on a full disk)
    for _ in range(3):
        with contextlib.suppress(OSError):
            rec.step(now=time.monotonic() + LATER)
    assert call_ids(sink) == [0, 1]  # written once, not once per step
    (spool.directory / "recorder.tmp").rmdir()
    spool.plain(2)
    rec.step(now=time.monotonic() + LATER)
    assert call_ids(sink) == [0, 1, 2]
    assert rec.stats.calls_written == 3
    assert spool.segments() == 0


def test_a_frame_that_cannot_be_built_is_counted_and_skipped(spool: Spool, monkeypatch: pytest.MonkeyPatch) -> None:
    real = loop_module.build

    def build(frame: Any, opts: BuildOptions, *rest: Any) -> Any:
        if frame.exchange.id.int == 2:
            raise RuntimeError("parser bug")
        return real(frame, opts, *rest)

    monkeypatch.setattr(loop_module, "build", build)
    sink = MemorySink()
    rec = recorder(spool, sink, batch_rows=1)
    spool.plain(0, 1, 2)
    rec.step()
    assert call_ids(sink) == [0, 2]
    assert rec.stats.build_errors == 1
    assert rec.stats.frames_read == 3


# -- duplicate tool results ------------------------------------------------------------------------


def test_resent_tool_results_are_recorded_once(spool: Spool) -> None:
    sink = MemorySink()
    rec = recorder(spool, sink, batch_rows=1)
    spool.add(encode(exchange(0), request(), response("call_1")))
    spool.add(encode(exchange(1), request(("call_1",)), response("call_2")))
    rec.step()
    spool.add(encode(exchange(2), request(("call_1", "call_2")), response()))  # a later batch
    rec.step()
    results = sink.all().tool_results
    assert [(r.tool_call_id, r.call_id.int - 1) for r in results] == [("call_1", 1), ("call_2", 2)]
    assert rec.stats.duplicate_results_skipped == 1
    assert [c.tool_result_count for c in sink.all().llm_calls] == [0, 1, 2]  # the calls still say what they carried


def test_same_tool_call_id_on_another_upstream_is_another_result(spool: Spool) -> None:
    sink = MemorySink()
    rec = recorder(spool, sink, batch_rows=1)
    spool.add(
        encode(exchange(0), request(("call_1",)), response()),
        encode(exchange(1, upstream="azure"), request(("call_1",)), response()),
    )
    rec.step()
    assert sorted(r.upstream for r in sink.all().tool_results) == ["azure", "openai"]


def test_results_are_not_lost_when_their_first_write_fails(spool: Spool) -> None:
    sink = FailingSink(failures=1)
    rec = recorder(spool, sink, batch_rows=1)
    spool.add(encode(exchange(0), request(("call_1",)), response()))
    rec.step()
    rec.step(now=time.monotonic() + LATER)
    assert [r.tool_call_id for r in sink.all().tool_results] == ["call_1"]


# -- run -------------------------------------------------------------------------------------------


def test_run_drains_the_spool_on_stop(spool: Spool) -> None:
    sink = MemorySink()
    rec = recorder(spool, sink)  # a batch would not be due for an hour
    spool.plain(0, 1, 2)
    stop = threading.Event()
    stop.set()
    rec.run(stop, shutdown_timeout=30.0, idle_sleep=0.001)
    assert call_ids(sink) == [0, 1, 2]
    assert spool.segments() == 0
    assert rec.reader.lag_bytes() == 0


def test_run_works_until_stopped(spool: Spool) -> None:
    sink = MemorySink()
    rec = recorder(spool, sink, batch_rows=1)
    stop = threading.Event()
    thread = threading.Thread(target=rec.run, args=(stop, 30.0, 0.001))
    thread.start()
    try:
        spool.plain(0)
        deadline = time.monotonic() + 30
        while not sink.batches and time.monotonic() < deadline:
            time.sleep(0.005)
        spool.plain(1)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert call_ids(sink) == [0, 1]


def test_run_gives_up_after_the_shutdown_timeout_and_keeps_the_spool(spool: Spool) -> None:
    sink = FailingSink(failures=10**6)
    rec = recorder(spool, sink)
    spool.plain(0)
    stop = threading.Event()
    stop.set()
    rec.run(stop, shutdown_timeout=0.2, idle_sleep=0.01)
    assert sink.batches == []
    assert rec.batch.rows() == 1
    assert spool.segments() == 1  # unwritten records stay in the spool for the next start
