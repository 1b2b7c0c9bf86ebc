"""The recorder's side of the spool: read new frames in order, commit what is stored, delete segments.

``poll`` returns frames past the read position. ``commit`` is called after the frames polled so far are
in the store: it saves the position in a checkpoint file (so a restarted recorder does not parse them
again) and deletes sealed segments that are fully stored. ``pending`` names the spool range polled but
not yet committed: the recorder derives its batch's deduplication token from it, and ``limit`` makes a
restarted reader poll exactly that range again, so the batch it rebuilds carries the same token.

Damaged bytes (a torn tail, a flipped bit) never stop reading: they are set aside as a dead letter and
counted, and the reader resynchronises at the next intact frame (magic and checksum).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from toolwatch.schemas.errors import FrameError
from toolwatch.spool.deadletter import DeadLetters
from toolwatch.spool.frame import Frame, decode, frame_size, resync
from toolwatch.spool.segments import SEALED, Segment, list_segments

log = logging.getLogger("toolwatch.spool")
CHECKPOINT = "recorder.checkpoint"
INTENT = "recorder.intent"
SPOOL_ID = "spool.id"
Ranges = dict[str, tuple[int, int]]  # segment key -> [start, end) byte offsets


@dataclass(frozen=True)
class Polled:
    frames: list[Frame]
    damaged: int


class SpoolReader:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._checkpoint_path = directory / CHECKPOINT
        self._intent_path = directory / INTENT
        self.dead_letters = DeadLetters(directory)
        self.committed: dict[str, int] = self._load_checkpoint()
        self.read_pos: dict[str, int] = dict(self.committed)
        self.damaged = 0
        self._limit: dict[str, int] | None = None
        self.split_tables: set[str] = set()  # tables of the fixed batch that are written frame by frame
        self._intent: dict[str, object] = {}

    def _load_checkpoint(self) -> dict[str, int]:
        try:
            data = json.loads(self._checkpoint_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            log.error("spool checkpoint unreadable, re-reading all segments: %s", e)
            return {}
        return {str(k): int(v) for k, v in data.items()}

    def pending(self) -> Ranges:
        """What was polled and not committed yet, per segment."""
        return {
            key: (self.committed.get(key, 0), pos)
            for key, pos in self.read_pos.items()
            if pos > self.committed.get(key, 0)
        }

    def limit(self, ranges: Ranges | None) -> bool:
        """Poll only up to the ends of ``ranges`` (None: no limit). Refused (False) unless the ranges
        start where this reader's checkpoint is, that is, unless they are what it would read next."""
        if ranges is None:
            self._limit = None
            return True
        if any(self.committed.get(key, 0) != start for key, (start, _end) in ranges.items()):
            return False
        self._limit = {key: end for key, (_start, end) in ranges.items()}
        return True

    def fix_batch(self) -> str:
        """The batch being written is what was polled since the last commit: save that range (the
        intent) and return the deduplication token it gives. The same range always gives the same token."""
        ranges = self.pending()
        # the spool's own id makes the token unique among every spool that writes to the same store
        token = hashlib.blake2b(
            json.dumps([self.spool_id(), sorted(ranges.items())]).encode(), digest_size=16
        ).hexdigest()
        self._intent = {"ranges": ranges, "token": token, "split": []}
        self._save_intent()
        return token

    def note_split(self, table: str) -> None:
        """The fixed batch's ``table`` is written frame by frame from now on: saved before any piece is,
        so a replay of the batch writes the same pieces, under the same tokens."""
        self.split_tables.add(table)
        self._intent["split"] = sorted(self.split_tables)
        self._save_intent()

    def _save_intent(self) -> None:
        tmp = self._intent_path.with_suffix(".intent.tmp")
        tmp.write_text(json.dumps(self._intent))
        os.replace(tmp, self._intent_path)

    def spool_id(self) -> str:
        """A random id given to this spool when first used, kept in ``spool.id``."""
        path = self.directory / SPOOL_ID
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(uuid.uuid4().hex)
        return path.read_text().strip()

    def resume(self) -> bool:
        """After a restart: if a batch was fixed but never committed, poll exactly its range first.
        True when there is such a batch."""
        try:
            saved = json.loads(self._intent_path.read_text())
            ranges = {str(k): (int(v[0]), int(v[1])) for k, v in saved["ranges"].items()}
            split = {str(t) for t in saved.get("split", [])}
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
            log.error("spool intent unreadable, ignored: %s", e)
            return False
        present = {seg.key for seg in list_segments(self.directory)}
        if not (ranges and set(ranges) <= present and self.limit(ranges)):
            return False
        self.split_tables = split
        self._intent = saved
        return True

    def limit_reached(self) -> bool:
        """True when polling is limited and everything up to the limit has been read."""
        if self._limit is None:
            return True
        segments = {s.key: s for s in list_segments(self.directory)}
        return all(
            self.read_pos.get(key, 0) >= min(end, _size(segments[key]))
            for key, end in self._limit.items()
            if key in segments
        )

    def poll(self, max_bytes: int = 16 * 1024 * 1024) -> Polled:
        frames: list[Frame] = []
        budget = max_bytes
        damaged = 0
        for seg in list_segments(self.directory):
            if budget <= 0:
                break
            if self._limit is not None and seg.key not in self._limit:
                continue
            try:
                size = seg.path.stat().st_size
            except FileNotFoundError:
                continue
            if self._limit is not None:
                size = min(size, self._limit[seg.key])
            pos = self.read_pos.get(seg.key, 0)
            if size <= pos:
                continue
            consumed, bad, full = self._read_segment(seg, pos, size, budget, frames)
            damaged += bad
            self.read_pos[seg.key] = pos + consumed
            budget -= max(consumed, 1)
            if full:  # the budget ends inside this segment: later segments must wait, to keep the order
                break
        self.damaged += damaged
        return Polled(frames, damaged)

    def _read_segment(
        self, seg: Segment, pos: int, size: int, budget: int, frames: list[Frame]
    ) -> tuple[int, int, bool]:
        """Decode whole frames of one segment from ``pos``. Returns (bytes consumed, damaged spans, whether
        the budget ran out before the segment's end)."""
        data = _read_range(seg.path, pos, min(size - pos, max(budget, 1)))
        consumed = bad = 0
        while consumed < len(data):
            try:
                n = frame_size(data, consumed)
                if n is None:  # not even a whole header
                    if pos + len(data) < size:
                        return consumed, bad, True  # the budget cut it: the rest next time
                    if seg.state == SEALED:
                        torn = self._damage(seg, pos + consumed, data[consumed:], "a torn frame header")
                        return consumed + torn, bad + 1, False
                    break
                if pos + consumed + n > size:  # the frame claims more bytes than the file holds
                    if seg.state != SEALED:
                        break  # still being written
                    raise FrameError("a frame cut short (or a corrupt length)")
                if consumed + n > len(data):
                    if consumed:
                        return consumed, bad, True  # the rest next time
                    data = _read_range(seg.path, pos, n)  # a single frame larger than the budget
                frames.append(decode(data, consumed))
                consumed += n
            except FrameError as e:
                if len(data) < size - pos:  # look for the next intact frame in the whole rest
                    data = _read_range(seg.path, pos, size - pos)
                nxt = resync(data, consumed)
                if nxt is None and seg.state != SEALED:
                    break  # wait: the segment may still grow, or be sealed
                end = len(data) if nxt is None else nxt
                consumed += self._damage(seg, pos + consumed, data[consumed:end], str(e))
                bad += 1
        return consumed, bad, False

    def _damage(self, seg: Segment, offset: int, raw: bytes, why: str) -> int:
        """Set damaged bytes aside (once per place: a replay after a restart names the same file)."""
        log.error("damaged spool bytes in %s at %d (%s): %d bytes set aside", seg.path.name, offset, why, len(raw))
        try:
            self.dead_letters.put(
                "reader", f"damaged spool frame: {why}", [raw], segment=seg.key, offset=offset,
                name=f"spool-{seg.key}-{offset}",
            )  # fmt: skip
        except OSError as e:
            log.error("cannot set damaged spool bytes aside: %s", e)
        return len(raw)

    def commit(self) -> None:
        """Everything polled so far is stored: checkpoint it, then delete finished sealed segments.

        The checkpoint is saved first (without the segments about to go), so a crash in between leaves a
        finished segment to be read again (its records have stable ids and the batch the same token),
        never a checkpoint that points into a file that no longer holds what it pointed at.
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
        self._limit = None
        self.split_tables = set()
        self._intent = {}
        try:
            self._intent_path.unlink()
        except FileNotFoundError:
            pass
        for seg in finished:
            try:
                seg.path.unlink()
            except FileNotFoundError:
                pass

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
