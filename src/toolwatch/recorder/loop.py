"""The recorder loop: tail the spool, build records, write them in batches, then commit the spool.

Batching lives here and only here: a batch is written when it reaches ``batch_rows`` rows or is
``batch_interval`` seconds old. A failed write keeps the batch, stops reading (the spool absorbs the
backlog) and retries with backoff; the spool is committed only after a write succeeded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from uuid import UUID

from toolwatch.recorder.build import BuildOptions, build
from toolwatch.recorder.sink import Batch, RecordSink
from toolwatch.spool.frame import Frame
from toolwatch.spool.reader import SpoolReader

log = logging.getLogger("toolwatch.recorder")


@dataclass
class RecorderStats:
    frames_read: int = 0
    calls_written: int = 0
    tool_calls_written: int = 0
    tool_results_written: int = 0
    records_written: int = 0
    build_errors: int = 0
    write_errors: int = 0
    duplicate_results_skipped: int = 0
    checkpoint_errors: int = 0
    last_write_at: float | None = None
    last_error: str | None = None


class SeenIds:
    """Bounded memory of tool-result ids already recorded (agents resend every result each turn)."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[tuple[str, str], None] = OrderedDict()

    def add(self, key: tuple[str, str]) -> bool:
        """True when the key is new."""
        if key in self._ids:
            self._ids.move_to_end(key)
            return False
        self._ids[key] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __contains__(self, key: tuple[str, str]) -> bool:
        """Whether the key is remembered; unlike ``add``, it changes nothing."""
        return key in self._ids


_RESPONSE = "\x00response:"  # response ids share the index with tool-call ids, apart by this prefix


class ToolCallIndex:
    """Bounded memory of recent tool calls: (upstream, tool_call_id) -> (producing call, its session key).

    Lets the recorder note on each result which call produced it, and on each call which session its
    tool-call ids lead to, so reports need no join over millions of rows. What falls out of it (or was
    recorded by another recorder) is resolved in SQL instead.
    """

    def __init__(self, capacity: int = 500_000) -> None:
        self.capacity = capacity
        self._map: OrderedDict[tuple[str, str], tuple[UUID, str]] = OrderedDict()

    def put(self, key: tuple[str, str], value: tuple[UUID, str]) -> None:
        self._map[key] = value
        self._map.move_to_end(key)
        if len(self._map) > self.capacity:
            self._map.popitem(last=False)

    def get(self, key: tuple[str, str]) -> tuple[UUID, str] | None:
        return self._map.get(key)


class Recorder:
    def __init__(
        self,
        reader: SpoolReader,
        sink: RecordSink,
        *,
        options: BuildOptions | None = None,
        batch_rows: int = 5000,
        batch_interval: float = 1.0,
        seen: SeenIds | None = None,
        index: ToolCallIndex | None = None,
    ) -> None:
        self.reader = reader
        self.sink = sink
        self.options = options or BuildOptions()
        self.batch_rows = batch_rows
        self.batch_interval = batch_interval
        self.seen = seen or SeenIds()
        self.index = index or ToolCallIndex()
        self.stats = RecorderStats()
        self.batch = Batch()
        self._batch_started: float | None = None
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_commit = 0.0

    def step(self, now: float | None = None) -> bool:
        """Read what is new and write a due batch. Returns True when it did any work."""
        now = time.monotonic() if now is None else now
        if self.batch.rows() and now < self._retry_at:
            return False
        worked = False
        if self._backoff == 0.0:  # after a failed write, read nothing more until the batch is stored
            polled = self.reader.poll()
            for frame in polled.frames:
                self._add(frame)
            worked = bool(polled.frames)
        if not worked and not self.batch.rows() and now - self._last_commit >= self.batch_interval:
            self._commit()  # idle: delete segments sealed since their frames were stored
        due = self.batch.rows() >= self.batch_rows or (
            self._batch_started is not None and now - self._batch_started >= self.batch_interval
        )
        if due or (self._backoff and self.batch.rows()):
            worked = self.flush() or worked
        return worked

    def _add(self, frame: Frame) -> None:
        try:
            self._build_into_batch(frame)
        finally:
            self.stats.frames_read += 1  # counted once the frame's records are in the batch

    def _build_into_batch(self, frame: Frame) -> None:
        try:
            # results already seen are not built: they would only be skipped below
            built = build(frame, self.options, self.seen.__contains__)
        except Exception:  # noqa: BLE001 - one bad frame must not stop the recorder
            self.stats.build_errors += 1
            log.exception("could not build records for exchange %s", frame.exchange.id)
            return
        if self._batch_started is None:
            self._batch_started = time.monotonic()
        call = built.call
        if not call.link_key:
            hit = None
            if call.previous_response_id:  # Responses API: the previous call's session, directly
                hit = self.index.get((call.upstream, _RESPONSE + call.previous_response_id))
            if hit is None and call.first_prior_tool_call_id:
                hit = self.index.get((call.upstream, call.first_prior_tool_call_id))
            if hit is not None and hit[1]:
                call = call.model_copy(update={"link_key": hit[1]})
        session_key = call.link_key or call.conv_key
        if call.response_id:
            self.index.put((call.upstream, _RESPONSE + call.response_id), (call.call_id, session_key))
        for tc in built.tool_calls:
            self.index.put((tc.upstream, tc.tool_call_id), (call.call_id, session_key))
        self.batch.llm_calls.append(call)
        self.batch.tool_calls.extend(built.tool_calls)
        for key, maybe in built.result_entries:
            if self.seen.add(key):
                # new now, so it was not known when built (only this loop adds keys in between)
                assert maybe is not None
                result = maybe
                hit = self.index.get((result.upstream, result.tool_call_id))
                if hit is not None:
                    result = result.model_copy(update={"producer_call_id": hit[0]})
                self.batch.tool_results.append(result)
            else:
                self.stats.duplicate_results_skipped += 1
        if built.body is not None:
            self.batch.bodies.append(built.body)

    def flush(self) -> bool:
        """Write the batch and commit the spool. False (and a backoff) when the store refused."""
        if not self.batch.rows():
            self._commit()
            self._batch_started = None
            return False
        try:
            self.sink.write(self.batch)
        except Exception as e:  # noqa: BLE001 - any store failure means: keep the batch, retry later
            self.stats.write_errors += 1
            self.stats.last_error = f"{type(e).__name__}: {str(e).strip()[:300]}"
            self._backoff = min(max(self._backoff * 2, 0.25), 5.0)
            self._retry_at = time.monotonic() + self._backoff
            log.warning("store write failed (retry in %.2fs): %s", self._backoff, self.stats.last_error)
            return False
        b = self.batch
        self.stats.calls_written += len(b.llm_calls)
        self.stats.tool_calls_written += len(b.tool_calls)
        self.stats.tool_results_written += len(b.tool_results)
        self.stats.records_written += len(b.llm_calls) + len(b.tool_calls) + len(b.tool_results)
        self.stats.last_write_at = time.time()
        self.batch = Batch()
        self._batch_started = None
        self._backoff = 0.0
        self._commit()  # after the batch is cleared: a failing checkpoint must not write it again
        return True

    def _commit(self) -> None:
        """Checkpoint the spool; a failure is logged and retried at the next commit (frames replay
        with the same record ids, so the worst case is a duplicate the store collapses)."""
        self._last_commit = time.monotonic()
        try:
            self.reader.commit()
        except OSError as e:
            self.stats.checkpoint_errors += 1
            log.error("cannot save the spool checkpoint: %s", e)

    def run(self, stop: threading.Event, shutdown_timeout: float, idle_sleep: float = 0.05) -> None:
        """Work until ``stop`` is set, then drain the spool for at most ``shutdown_timeout`` seconds."""
        deadline: float | None = None
        while True:
            if stop.is_set():
                if deadline is None:
                    deadline = time.monotonic() + shutdown_timeout
                if time.monotonic() >= deadline or (not self.batch.rows() and self.reader.pending_bytes() == 0):
                    break
            try:
                worked = self.step()
            except Exception:  # noqa: BLE001
                log.exception("recorder step failed")
                worked = False
            if stop.is_set() and self.batch.rows() and not self._backoff:
                self.flush()
                continue
            if not worked:
                time.sleep(idle_sleep)
        if self.batch.rows():
            log.warning("recorder stopped with %d records unwritten; they stay in the spool", self.batch.rows())
