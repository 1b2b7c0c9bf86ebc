"""The recorder loop: tail the spool, build records, write them in batches, then commit the spool.

Batching lives here and only here: a batch is written when it reaches ``batch_rows`` rows or is
``batch_interval`` seconds old. A failed write keeps the batch, stops reading (the spool absorbs the
backlog) and retries with backoff; the spool is committed only after a write succeeded.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from toolwatch.providers import parse
from toolwatch.recorder.build import BuildOptions, build
from toolwatch.recorder.links import Links
from toolwatch.spool.frame import Frame
from toolwatch.spool.reader import SpoolReader
from toolwatch.store.sink import Batch, RecordSink

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


class Recorder:
    def __init__(
        self,
        reader: SpoolReader,
        sink: RecordSink,
        *,
        options: BuildOptions | None = None,
        batch_rows: int = 5000,
        batch_interval: float = 1.0,
        links: Links | None = None,
    ) -> None:
        self.reader = reader
        self.sink = sink
        self.options = options or BuildOptions()
        self.batch_rows = batch_rows
        self.batch_interval = batch_interval
        self.links = links or Links()
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
            records = build(frame, parse(frame), self.links, self.options)
        except Exception:  # noqa: BLE001 - one bad frame must not stop the recorder
            self.stats.build_errors += 1
            log.exception("could not build records for exchange %s", frame.exchange.id)
            return
        if self._batch_started is None:
            self._batch_started = time.monotonic()
        self.links.remember(records.call, records.tool_calls, records.tool_results, records.resent)
        self.batch.add(records.call, records.tool_calls, records.tool_results, records.body)
        self.stats.duplicate_results_skipped += len(records.resent)

    def status(self) -> dict[str, Any]:
        """What the read API's ``/status`` reports about recording."""
        return {
            **asdict(self.stats),
            "damaged_frames": self.reader.damaged,
            "pending_batch_rows": self.batch.rows(),
            "spool_lag_bytes": self.reader.lag_bytes(),
        }

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
