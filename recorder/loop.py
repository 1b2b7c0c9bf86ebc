"""The recorder loop: tail the spool, build records, write them in batches, then commit the spool.

Batching lives here and only here: a batch is written when it reaches ``batch_rows`` rows or is
``batch_interval`` seconds old. Before its first write, a batch is fixed to the spool range it was read
from, and that range gives it its deduplication token; the range is saved (the reader's intent file),
so a recorder that dies between the insert and the checkpoint rebuilds the very same batch, with the
same token, and the store drops what it already has.

A write that fails while the store is down keeps the batch, stops reading (the spool absorbs the
backlog) and retries with backoff. A table the store refuses twice while it is up is written frame by
frame (a decision saved with the batch's range, so a replay splits alike): a frame it still refuses is
set aside as a dead letter with the error, and the rest is written. The spool is committed only after the
batch is stored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from toolwatch.providers import parse
from toolwatch.recorder.build import BuildOptions, build
from toolwatch.recorder.links import Links
from toolwatch.spool.deadletter import DeadLetters
from toolwatch.spool.frame import Frame, encode
from toolwatch.spool.reader import SpoolReader
from toolwatch.store.sink import TABLES, Batch, RecordSink

log = logging.getLogger("toolwatch.recorder")


class Refused(Exception):
    """The store, though up, refused a block twice."""


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
    rows_set_aside: int = 0  # rows the store refused, set aside as dead letters
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
        # told about every batch the store has taken, and every failed write (metrics, traces, alerts)
        self.on_stored: list[Callable[[Batch], None]] = []
        self.on_write_error: list[Callable[[], None]] = []
        self._caught_up_at = time.monotonic()
        self.batch = Batch()
        self._frames: list[Frame] = []  # the batch's frames, for dead letters
        self._origin: dict[str, list[int]] = {t: [] for t in TABLES}  # per table row: its frame's index
        self._uncommitted = False  # a batch was stored, its checkpoint not saved yet
        self._resuming = self.reader.resume()  # rebuild the batch a previous recorder left unfinished
        self._batch_started: float | None = None
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_commit = 0.0

    def step(self, now: float | None = None) -> bool:
        """Read what is new and write a due batch. Returns True when it did any work."""
        now = time.monotonic() if now is None else now
        if self._uncommitted:  # the next batch starts only where the last one was checkpointed
            self._commit()
            if self._uncommitted:
                return False
        if self.batch.rows() and now < self._retry_at:
            return False
        worked = False
        if self._backoff == 0.0:  # after a failed write, read nothing more until the batch is stored
            polled = self.reader.poll()
            for frame in polled.frames:
                self._add(frame)
            worked = bool(polled.frames)
        if (
            not worked
            and not self.batch.rows()
            and not self._resuming
            and now - self._last_commit >= self.batch_interval
        ):
            self._commit()  # idle: delete segments sealed since their frames were stored
        if self._resuming:  # the unfinished batch is exactly its saved range: written once it is all read
            due = self.reader.limit_reached()
        else:
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
        index = len(self._frames)
        self._frames.append(frame)
        self.batch.add(records.call, records.tool_calls, records.tool_results, records.body)
        self._origin["llm_calls"].append(index)
        self._origin["tool_calls"] += [index] * len(records.tool_calls)
        self._origin["tool_results"] += [index] * len(records.tool_results)
        if records.body is not None:
            self._origin["bodies"].append(index)
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
            self._uncommitted = True
            self._commit()
            self._reset()
            return False
        if not self.batch.token:
            try:
                self.batch.token = self.reader.fix_batch()
            except OSError as e:
                return self._failed(e)
        try:
            self._write()
            self._fold_sessions()
        except Exception as e:  # noqa: BLE001 - any store failure means: keep the batch, retry later
            return self._failed(e)
        b = self.batch
        self._tell(self.on_stored, b)
        self.stats.calls_written += len(b.llm_calls)
        self.stats.tool_calls_written += len(b.tool_calls)
        self.stats.tool_results_written += len(b.tool_results)
        self.stats.records_written += len(b.llm_calls) + len(b.tool_calls) + len(b.tool_results)
        self.stats.last_write_at = time.time()
        self._reset()
        self._backoff = 0.0
        self._uncommitted = True
        self._commit()  # after the batch is cleared: a failing checkpoint must not write it again
        return True

    @staticmethod
    def _tell(listeners: list[Callable[..., None]], *args: Any) -> None:
        for listener in listeners:
            try:
                listener(*args)
            except Exception:  # noqa: BLE001 - a listener's trouble never stops recording
                log.exception("a recorder listener failed")

    def lag_seconds(self) -> float:
        """0 when the spool holds nothing unstored; else the time since the last checkpoint (everything
        read before it is stored, so the oldest unstored exchange is at most that old)."""
        if self.reader.lag_bytes() == 0:
            return 0.0
        return time.monotonic() - self._caught_up_at

    def _reset(self) -> None:
        self.batch = Batch()
        self._frames = []
        self._origin = {t: [] for t in TABLES}
        self._batch_started = None

    def _failed(self, e: Exception) -> bool:
        self._tell(self.on_write_error)
        self.stats.write_errors += 1
        self.stats.last_error = f"{type(e).__name__}: {str(e).strip()[:300]}"
        self._backoff = min(max(self._backoff * 2, 0.25), 5.0)
        self._retry_at = time.monotonic() + self._backoff
        log.warning("store write failed (retry in %.2fs): %s", self._backoff, self.stats.last_error)
        return False

    def _store_up(self) -> bool:
        reachable = getattr(self.sink, "reachable", None)
        return bool(reachable()) if reachable is not None else False

    def _write(self) -> None:
        """Each table as one block. A table the store refuses while it is up is tried once more whole (the
        refusal may have been a lost acknowledgement, which the token makes harmless), then frame by frame;
        that decision is saved with the batch's range first, so a replay writes the same pieces."""
        for table in TABLES:
            if table in self.batch.done or not getattr(self.batch, table):
                continue
            if table not in self.reader.split_tables:
                whole = Batch(token=self.batch.token, done=set(TABLES) - {table})
                getattr(whole, table).extend(getattr(self.batch, table))
                try:
                    self._write_twice(whole)
                    self.batch.done.add(table)
                    continue
                except Refused as e:
                    log.warning("the store refuses %s rows while up (%s): writing them frame by frame", table, e)
                    self.reader.note_split(table)
            self._frame_by_frame(table)
            self.batch.done.add(table)

    def _fold_sessions(self) -> None:
        """The session rows the batch changes, once its events are stored (a sink may not keep them)."""
        fold = getattr(self.sink, "fold_sessions", None)
        if fold is not None and "sessions" not in self.batch.done:
            fold(self.batch)
            self.batch.done.add("sessions")

    def _write_twice(self, piece: Batch) -> None:
        """Write ``piece``; raise Refused when the store, though up, refused it twice."""
        for attempt in (1, 2):
            try:
                self.sink.write(piece)
                return
            except Exception as e:  # noqa: BLE001
                if not self._store_up():
                    raise
                if attempt == 2:
                    raise Refused(f"{type(e).__name__}: {str(e).strip()[:300]}") from e

    def _frame_by_frame(self, table: str) -> None:
        """One piece per frame, its token from the batch's and the frame's place. A frame refused twice is
        set aside as a dead letter; when many are, the trouble is the store's, not the rows': nothing is
        set aside and the batch is retried later (the pieces written so far are dropped as duplicates)."""
        groups: dict[int, list[Any]] = {}
        for row, index in zip(getattr(self.batch, table), self._origin[table], strict=True):
            groups.setdefault(index, []).append(row)
        refused: list[tuple[int, Refused]] = []
        for index, rows in groups.items():
            piece = Batch(token=f"{self.batch.token}:f{index}")
            getattr(piece, table).extend(rows)
            try:
                self._write_twice(piece)
            except Refused as e:
                refused.append((index, e))
                if len(refused) > max(3, len(groups) // 10):
                    raise Refused(f"the store refuses most {table} rows: {e}") from e
        for index, error in refused:
            frame = self._frames[index]
            self.stats.rows_set_aside += 1
            DeadLetters(self.reader.directory).put(
                "recorder", f"the store refused a {table} row: {error}",
                [encode(frame.exchange, frame.request, frame.response)],
                name=f"store-{self.batch.token}-f{index}-{table}", exchange_id=str(frame.exchange.id), table=table,
            )  # fmt: skip
            log.error("the store refused a %s row of exchange %s: set aside", table, frame.exchange.id)

    def _commit(self) -> None:
        """Checkpoint the spool; a failure is logged and retried at the next commit (frames replay
        with the same record ids, so the worst case is a duplicate the store collapses)."""
        self._last_commit = time.monotonic()
        try:
            self.reader.commit()
            self._caught_up_at = time.monotonic()
            self._uncommitted = False
            self._resuming = False
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
