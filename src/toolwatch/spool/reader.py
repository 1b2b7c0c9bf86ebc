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

from toolwatch.errors import FrameError
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
            pos = self.read_pos.get(seg.key, 0)
            if seg.key in self._skip:
                continue
            try:
                size = seg.path.stat().st_size
            except FileNotFoundError:
                continue
            if size <= pos:
                continue
            data = _read_range(seg.path, pos, min(size - pos, max(budget, 1)))
            consumed = 0
            torn = False
            while consumed < len(data):
                try:
                    n = frame_size(data, consumed)
                    if n is not None and consumed == 0 and n > len(data) and pos + n <= size:
                        data = _read_range(seg.path, pos, n)  # a single frame larger than the budget
                    if n is None or consumed + n > len(data):
                        torn = True
                        break
                    frames.append(decode(data, consumed))
                except FrameError as e:
                    damaged += 1
                    log.error("damaged spool frame in %s: %s; skipping the rest of the segment", seg.path, e)
                    self._skip.add(seg.key)
                    consumed = size - pos
                    break
                consumed += n
            if torn and seg.state == SEALED and pos + len(data) >= size:
                # a sealed segment that ends in a partial frame: its writer died mid-write
                damaged += 1
                log.error("torn frame at the end of %s; skipping it", seg.path)
                consumed = size - pos
            self.read_pos[seg.key] = pos + consumed
            budget -= consumed
        self.damaged += damaged
        return Polled(frames, damaged)

    def commit(self) -> None:
        """Everything polled so far is stored: checkpoint it and delete finished sealed segments."""
        segments = {s.key: s for s in list_segments(self.directory)}
        for key, pos in list(self.read_pos.items()):
            seg = segments.get(key)
            if seg is None:
                self.read_pos.pop(key, None)
                continue
            if seg.state == SEALED and _size(seg) <= pos:
                try:
                    seg.path.unlink()
                except FileNotFoundError:
                    pass
                self.read_pos.pop(key, None)
                self._skip.discard(key)
        self.committed = dict(self.read_pos)
        tmp = self._checkpoint_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.committed))
        os.replace(tmp, self._checkpoint_path)

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
