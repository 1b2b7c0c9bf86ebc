"""The proxy's side of the spool: append finished exchanges, never wait.

``append`` only puts bytes on an in-memory list and wakes the flusher; the flusher writes them to the
active segment from a worker thread (the write releases the GIL) so the event loop never blocks on disk.
Segments are ``<writer>-<seq>.open`` while written and renamed ``.seg`` when sealed (by size, age or
close); the recorder deletes sealed segments once their records are stored. When the spool on disk plus
what is pending would pass the cap, the exchange is dropped from recording: counted and logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from toolwatch.schemas.errors import SpoolError
from toolwatch.schemas.exchange import Exchange
from toolwatch.spool.frame import encode
from toolwatch.spool.segments import OPEN, SEALED, list_segments, segment_name, spool_bytes

log = logging.getLogger("toolwatch.spool")
FRAME_OVERHEAD = 1024  # header and JSON metadata, estimated before encoding


class SpoolWriter:
    def __init__(
        self,
        directory: Path,
        *,
        cap_bytes: int,
        segment_bytes: int,
        segment_max_age: float,
        writer_id: str = "w0",
        gather_window: float = 0.005,
        recount_every: float = 0.5,
    ) -> None:
        self.directory = directory
        self.cap_bytes = cap_bytes
        self.segment_bytes = segment_bytes
        self.segment_max_age = segment_max_age
        self.writer_id = writer_id
        self.gather_window = gather_window
        self.recount_every = recount_every
        self._last_count = 0.0
        self.appended = 0
        self.dropped = 0
        self.write_errors = 0
        self._pending: list[tuple[Exchange, bytes, bytes, int]] = []
        self._pending_bytes = 0
        self._disk_bytes = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._fd: int | None = None
        self._seg_path: Path | None = None
        self._seg_size = 0
        self._seg_opened = 0.0
        self._seq = 0
        self._last_drop_log = 0.0
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self._prepare)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="spool-flusher")

    def _prepare(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SpoolError(f"cannot create spool directory {self.directory}: {e.strerror}") from e
        seqs = [0]
        for seg in list_segments(self.directory):
            if seg.writer != self.writer_id:
                continue
            seqs.append(seg.seq)
            if seg.state == OPEN:  # left by a process that died: nothing will append to it again
                os.replace(seg.path, seg.path.with_suffix(SEALED))
        # numbers keep growing across restarts, even on an emptied spool, so a segment name is never reused
        # (a reader's checkpoint names segments): the last number handed out is kept in <writer>.seq
        try:
            seqs.append(int(self._seq_file.read_text().strip() or 0))
        except (FileNotFoundError, ValueError):
            pass
        self._seq = max(seqs)
        self._disk_bytes = spool_bytes(self.directory)

    async def close(self) -> None:
        """Write everything pending and seal the active segment."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    # -- hot path ----------------------------------------------------------------------------------
    def append(self, exchange: Exchange, request: bytes, response: bytes) -> bool:
        """Queue one exchange. Returns False (and counts a drop) when the spool cap would be passed.

        Encoding (JSON metadata, checksum, copying) happens later in the flusher thread, not here.
        """
        size = len(request) + len(response) + FRAME_OVERHEAD
        if self._closing or self._disk_bytes + self._pending_bytes + size > self.cap_bytes:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 5.0:
                self._last_drop_log = now
                log.warning(
                    "spool full (%d of %d bytes): exchange dropped from recording (%d dropped so far)",
                    self._disk_bytes + self._pending_bytes,
                    self.cap_bytes,
                    self.dropped,
                )
            return False
        self._pending.append((exchange, request, response, size))
        self._pending_bytes += size
        self.appended += 1
        self._wake.set()
        return True

    @property
    def bytes_on_disk(self) -> int:
        return self._disk_bytes + self._pending_bytes

    # -- flusher -----------------------------------------------------------------------------------
    async def _run(self) -> None:
        refresh_every = 0.5
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=refresh_every)
            except TimeoutError:
                pass
            else:
                if not self._closing:
                    # gather what arrives in the next few ms: one thread hop per batch, not per request
                    await asyncio.sleep(self.gather_window)
            self._wake.clear()
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._write, batch)
            except OSError as e:
                self.write_errors += 1
                log.error("spool write failed, %d exchanges lost from recording: %s", len(batch), e)
            finally:
                self._pending_bytes -= sum(item[3] for item in batch)
            if self._closing and not self._pending:
                await asyncio.to_thread(self._seal)
                return

    def _write(self, batch: list[tuple[Exchange, bytes, bytes, int]]) -> None:
        now = time.monotonic()
        if self._fd is not None and (
            self._seg_size >= self.segment_bytes or now - self._seg_opened >= self.segment_max_age
        ):
            self._seal()
        if batch:
            if self._fd is None:
                self._open_segment(now)
            data = b"".join(encode(ex, req, resp) for ex, req, resp, _ in batch)
            assert self._fd is not None
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            self._seg_size += len(data)
            self._disk_bytes += len(data)
        if now - self._last_count >= self.recount_every:
            # the recorder deletes what it stored: recount now and then, not on every write (the count is
            # only ever too high in between, so the cap holds)
            self._disk_bytes = spool_bytes(self.directory)
            self._last_count = now

    @property
    def _seq_file(self) -> Path:
        return self.directory / f"{self.writer_id}.seq"

    def _open_segment(self, now: float) -> None:
        self._seq += 1
        tmp = self._seq_file.with_suffix(".seq.tmp")
        tmp.write_text(str(self._seq))
        os.replace(tmp, self._seq_file)
        self._seg_path = self.directory / segment_name(self.writer_id, self._seq, OPEN)
        self._fd = os.open(self._seg_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._seg_size = 0
        self._seg_opened = now

    def _seal(self) -> None:
        if self._fd is None or self._seg_path is None:
            return
        os.close(self._fd)
        os.replace(self._seg_path, self._seg_path.with_suffix(SEALED))
        self._fd = None
        self._seg_path = None
