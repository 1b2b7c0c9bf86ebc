"""The proxy's side of the spool: each finished exchange is written before its answer is complete.

``append`` encodes the frame and writes it to the active segment at once, with one ``writev`` into the
page cache (the bodies are not copied): when it returns, a SIGKILL of any toolwatch process can no
longer lose the exchange, and the forwarder calls it before the last byte of the response goes to the
agent. Writing to the page cache does not wait for the disk; a ticker task makes the data durable with
``fdatasync`` every ``fsync_interval`` seconds (so a power loss loses at most that much), seals segments
by age, and recounts what is on disk.

Segments are ``<writer>-<seq>.open`` while written and renamed ``.seg`` when sealed (by size, age or
close); the recorder deletes sealed segments once their records are stored. Nothing here raises into a
request: a frame that cannot be encoded becomes a dead letter, a write the disk refuses (full, or over a
file-size limit) is rolled back to the last whole frame and counted, and a spool past ``cap_bytes``
drops the exchange from recording (counted and logged).

Several proxy processes (``serve --workers N``) share one spool, each writing under its own writer id
(``w0``, ``w1``, ...), so every segment still has one writer; the one reader reads them all. The cap
counts the whole folder, every writer's segments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from pathlib import Path

from toolwatch.schemas.errors import SpoolError
from toolwatch.schemas.exchange import Exchange
from toolwatch.schemas.text import safe_text
from toolwatch.spool.deadletter import DeadLetters
from toolwatch.spool.frame import encode_parts
from toolwatch.spool.segments import OPEN, SEALED, list_segments, segment_name, spool_bytes

log = logging.getLogger("toolwatch.spool")
TICK = 0.05


class SpoolWriter:
    def __init__(
        self,
        directory: Path,
        *,
        cap_bytes: int,
        segment_bytes: int,
        segment_max_age: float,
        writer_id: str = "w0",
        fsync_interval: float = 0.5,
        recount_every: float = 0.5,
    ) -> None:
        self.directory = directory
        self.cap_bytes = cap_bytes
        self.segment_bytes = segment_bytes
        self.segment_max_age = segment_max_age
        self.writer_id = writer_id
        self.fsync_interval = fsync_interval
        self.recount_every = recount_every
        self.dead_letters = DeadLetters(directory)
        self.appended = 0  # frames written
        self.dropped = 0  # refused by the spool cap, or after close
        self.refused = 0  # refused by the disk (full, or over a file-size limit)
        self.write_errors = 0
        self.encode_errors = 0  # frames set aside as dead letters
        self.sync_errors = 0
        self._disk_bytes = 0
        self._closing = False
        self._fd: int | None = None
        self._seg_path: Path | None = None
        self._seg_size = 0
        self._seg_opened = 0.0
        self._seq = 0
        self._to_sync: list[int] = []  # duplicated descriptors of data not yet made durable
        self._dirty = False
        self._last_sync = 0.0
        self._last_count = 0.0
        self._last_drop_log = 0.0
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self._prepare)
        self._task = asyncio.get_running_loop().create_task(self._tick(), name="spool-ticker")

    def _prepare(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
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
        """Seal the active segment and make everything durable. Later appends are dropped."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._seal()
        await asyncio.to_thread(self._sync_now)

    @property
    def healthy(self) -> bool:
        """False when the ticker has stopped while the writer is open (it never should)."""
        return self._closing or (self._task is not None and not self._task.done())

    @property
    def bytes_on_disk(self) -> int:
        return self._disk_bytes

    # -- hot path ----------------------------------------------------------------------------------
    def append(self, exchange: Exchange, request: bytes, response: bytes) -> bool:
        """Write one exchange now. False (and counted) when it was not written: cap, disk or encoding."""
        if self._closing:
            self._drop()
            return False
        try:
            parts = encode_parts(exchange, request, response)
        except Exception as e:  # noqa: BLE001 - whatever it is, the exchange is set aside, not lost
            self._set_aside(exchange, request, response, e)
            return False
        size = sum(len(p) for p in parts)
        if self._disk_bytes + size > self.cap_bytes:
            self._drop()
            return False
        try:
            self._write(parts, size)
        except OSError as e:
            self.refused += 1
            self.write_errors += 1
            log.error("spool write refused (%s); exchange %s not recorded (%d so far)", e, exchange.id, self.refused)
            return False
        self.appended += 1
        return True

    def _drop(self) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log > 5.0:
            self._last_drop_log = now
            log.warning(
                "spool full (%d of %d bytes): exchange dropped from recording (%d dropped so far)",
                self._disk_bytes,
                self.cap_bytes,
                self.dropped,
            )

    def _set_aside(self, exchange: Exchange, request: bytes, response: bytes, error: Exception) -> None:
        """Keep what could not be encoded: as a whole frame of its made-safe copy when that encodes (so
        ``deadletter replay`` can record it), else its bodies."""
        self.encode_errors += 1
        payload: list[bytes]
        try:
            fields = {k: _made_safe(v) for k, v in exchange.__dict__.items()}
            payload = encode_parts(exchange.model_copy(update=fields), request, response)
        except Exception:  # noqa: BLE001
            payload = [request, response]
        try:
            path = self.dead_letters.put(
                "proxy", f"frame could not be encoded: {type(error).__name__}: {error}", payload,
                exchange_id=str(exchange.id), exchange=safe_text(repr(exchange))[:4000],
            )  # fmt: skip
            log.error("exchange %s could not be encoded; set aside in %s", exchange.id, path)
        except OSError as e:
            log.error("exchange %s could not be encoded nor set aside: %s", exchange.id, e)

    def _write(self, parts: list[bytes], size: int) -> None:
        if self._fd is not None and self._seg_size >= self.segment_bytes:
            self._seal()
        if self._fd is None:
            self._open_segment()
        assert self._fd is not None
        fd, start = self._fd, self._seg_size
        try:
            written = os.writev(fd, parts)
            if written < size:  # a short write: try the rest once, the disk then says why it refuses
                written += os.write(fd, b"".join(parts)[written:])
        except OSError:
            self._roll_back(fd, start)
            raise
        self._seg_size += size
        self._disk_bytes += size
        self._dirty = True

    def _roll_back(self, fd: int, start: int) -> None:
        """Cut the segment back to its last whole frame and seal it, so the next frame starts a new file
        (a file-size limit is per file; a full disk refuses the next file too, until it has room)."""
        try:
            os.ftruncate(fd, start)
        except OSError as e:  # the torn tail stays; the reader sets it aside as damage
            log.error("cannot roll back a torn spool write: %s", e)
        self._seal()

    @property
    def _seq_file(self) -> Path:
        return self.directory / f"{self.writer_id}.seq"

    def _open_segment(self) -> None:
        seq = self._seq + 1
        tmp = self._seq_file.with_suffix(".seq.tmp")
        tmp.write_text(str(seq))
        os.replace(tmp, self._seq_file)
        self._seq = seq
        path = self.directory / segment_name(self.writer_id, seq, OPEN)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._seg_path = path
        self._seg_size = 0
        self._seg_opened = time.monotonic()

    def _seal(self) -> None:
        fd, path = self._fd, self._seg_path
        self._fd, self._seg_path = None, None  # first: a closed descriptor number is never used again
        if fd is None or path is None:
            return
        with contextlib.suppress(OSError):
            self._to_sync.append(os.dup(fd))
        os.close(fd)
        try:
            os.replace(path, path.with_suffix(SEALED))
        except OSError as e:
            log.error("cannot seal spool segment %s: %s", path.name, e)

    # -- ticker ------------------------------------------------------------------------------------
    async def _tick(self) -> None:
        """Seal by age, make data durable, recount the spool. Never ends by itself: every failure is
        logged and counted, and the next tick tries again."""
        while True:
            await asyncio.sleep(TICK)
            try:
                now = time.monotonic()
                if self._fd is not None and now - self._seg_opened >= self.segment_max_age:
                    self._seal()
                if (self._dirty or self._to_sync) and now - self._last_sync >= self.fsync_interval:
                    self._last_sync = now
                    fds = self._take_for_sync()
                    await asyncio.to_thread(self._sync, fds)
                if now - self._last_count >= self.recount_every:
                    # the recorder deletes what it stored: recount now and then (the count is only ever
                    # too high in between, so the cap holds)
                    self._last_count = now
                    self._disk_bytes = await asyncio.to_thread(spool_bytes, self.directory)
            except Exception:  # noqa: BLE001 - the ticker must outlive any one failure
                log.exception("spool ticker failed; trying again")

    def _take_for_sync(self) -> list[int]:
        fds, self._to_sync = self._to_sync, []
        if self._fd is not None and self._dirty:
            with contextlib.suppress(OSError):
                fds.append(os.dup(self._fd))
        self._dirty = False
        return fds

    def _sync(self, fds: list[int]) -> None:
        for fd in fds:
            try:
                os.fdatasync(fd)
            except OSError as e:
                self.sync_errors += 1
                log.error("spool fdatasync failed: %s", e)
            finally:
                os.close(fd)
        with contextlib.suppress(OSError):  # renames and new files: make the directory durable too
            dfd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _sync_now(self) -> None:
        self._sync(self._take_for_sync())


def seal_left_open(directory: Path) -> int:
    """Seal the proxies' segments left open by processes that died; only while holding the spool's lock,
    so that none of them writes any more. A writer seals its own at start, but a writer id may not start
    again (``serve --workers`` lower than last time), and the reader finishes only sealed segments.
    Returns how many were sealed."""
    sealed = 0
    for seg in list_segments(directory):
        if seg.state == OPEN and _PROXY_WRITER.fullmatch(seg.writer):
            try:
                os.replace(seg.path, seg.path.with_suffix(SEALED))
                sealed += 1
            except FileNotFoundError:
                continue
    return sealed


_PROXY_WRITER = re.compile(r"w[0-9]+")  # the proxy workers' ids; others (``deadletter replay``) seal their own


def _made_safe(value: object) -> object:
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_text(str(k)): _made_safe(v) for k, v in value.items()}
    return value
