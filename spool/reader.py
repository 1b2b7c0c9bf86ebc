"""The recorder's side of the spool: read new frames in order, commit what is stored, delete segments.

``poll`` returns frames past the read position. ``commit`` is called after the frames polled so far are
in the store: it saves the position in a checkpoint file (so a restarted recorder does not parse them
again) and deletes sealed segments that are fully stored. A damaged frame is skipped with a log line
and counted; the reader resynchronises at the next segment.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from toolwatch.schemas.errors import FrameError
from toolwatch.spool.frame import Frame, decode, frame_size
from toolwatch.spool.segments import SEALED, Segment, list_segments

log = logging.getLogger("toolwatch.spool")
CHECKPOINT = "recorder.checkpoint"


@dataclass(frozen=True)
class Polled:
    frames: list[Frame]
    damaged: int


class SpoolReader:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._checkpoint_path = directory / CHECKPOINT
        self.committed: dict[str, int] = self._load_checkpoint()
        self.read_pos: dict[str, int] = dict(self.committed)
        self.damaged = 0
        self._skip: set[str] = set()  # segments abandoned after damage, until sealed and deleted

    def _load_checkpoint(self) -> dict[str, int]:
        try:
            data = json.loads(self._checkpoint_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            log.error("spool checkpoint unreadable, re-reading all segments: %s", e)
            return {}
        return {str(k): int(v) for k, v in data.items()}

    def poll(self, max_bytes: int = 16 * 1024 * 1024) -> Polled:
        frames: list[Frame] = []
        budget = max_bytes
        damaged = 0
        for seg in list_segments(self.directory):
            if budget <= 0:
                break
            try:
                size = seg.path.stat().st_size
            except FileNotFoundError:
                continue
            pos = self.read_pos.get(seg.key, 0)
            if seg.key in self._skip:
                if seg.state == SEALED:  # abandoned after damage and now complete: let commit delete it
                    self.read_pos[seg.key] = size
                continue
            if size <= pos:
                continue
            consumed, got, bad = self._read_segment(seg, pos, size, budget, frames)
            damaged += bad
            self.read_pos[seg.key] = pos + consumed
            budget -= max(consumed, 1)
        self.damaged += damaged
        return Polled(frames, damaged)

    def _read_segment(
        self, seg: Segment, pos: int, size: int, budget: int, frames: list[Frame]
    ) -> tuple[int, int, int]:
        """Decode whole frames of one segment from ``pos``. Returns (bytes consumed, frames, damaged)."""
        data = _read_range(seg.path, pos, min(size - pos, max(budget, 1)))
        consumed = got = 0
        while consumed < len(data):
            try:
                n = frame_size(data, consumed)
                if n is None:  # not even a whole header
                    if seg.state == SEALED and pos + len(data) >= size:
                        return self._damaged(seg, size - pos, got, "a torn frame header at its end")
                    break
                if pos + consumed + n > size:  # the frame claims more bytes than the file holds
                    if seg.state == SEALED:
                        return self._damaged(seg, size - pos, got, "a frame cut short (or a corrupt length)")
                    break  # still being written
                if consumed + n > len(data):
                    if consumed:
                        break  # the rest next time
                    data = _read_range(seg.path, pos, n)  # a single frame larger than the budget
                frames.append(decode(data, consumed))
            except FrameError as e:
                return self._damaged(seg, size - pos, got, str(e))
            consumed += n
            got += 1
        return consumed, got, 0

    def _damaged(self, seg: Segment, rest: int, got: int, why: str) -> tuple[int, int, int]:
        log.error("damaged spool frame in %s (%s); skipping the rest of the segment", seg.path, why)
        self._skip.add(seg.key)
        return rest, got, 1

    def commit(self) -> None:
        """Everything polled so far is stored: checkpoint it, then delete finished sealed segments.

        The checkpoint is saved first (without the segments about to go), so a crash in between leaves a
        finished segment to be read again (its records have stable ids), never a checkpoint that points
        into a file that no longer holds what it pointed at.
        """
        segments = {s.key: s for s in list_segments(self.directory)}
        finished = []
        keep: dict[str, int] = {}
        for key, pos in self.read_pos.items():
            seg = segments.get(key)
            if seg is None:
                continue
            if seg.state == SEALED and _size(seg) <= pos:
                finished.append(seg)
            else:
                keep[key] = pos
        tmp = self._checkpoint_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(keep))
        os.replace(tmp, self._checkpoint_path)
        # only now forget them: if saving failed, nothing changed and the next commit tries again
        for seg in finished:
            self.read_pos.pop(seg.key, None)
        for key in [k for k in self.read_pos if k not in segments]:
            self.read_pos.pop(key, None)
        self.committed = dict(keep)
        for seg in finished:
            try:
                seg.path.unlink()
            except FileNotFoundError:
                pass
            self._skip.discard(seg.key)

    def lag_bytes(self) -> int:
        """Bytes in the spool not yet committed to the store."""
        total = 0
        for seg in list_segments(self.directory):
            total += max(0, _size(seg) - self.committed.get(seg.key, 0))
        return total

    def pending_bytes(self) -> int:
        """Bytes in the spool not yet polled."""
        total = 0
        for seg in list_segments(self.directory):
            if seg.key not in self._skip:
                total += max(0, _size(seg) - self.read_pos.get(seg.key, 0))
        return total


def _size(seg: Segment) -> int:
    try:
        return seg.path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_range(path: Path, start: int, length: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read(length)
