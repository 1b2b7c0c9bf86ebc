"""Dead letters: what could not be recorded, set aside instead of lost or retried forever.

Each is one file ``<spool>/deadletter/<time>-<pid>-<n>.dead`` (mode 0600): a line of JSON saying why
(``error``), where (``stage``: ``proxy`` for a frame that could not be encoded, ``reader`` for damaged spool
bytes, ``recorder`` for a row the store rejected) and what (``exchange_id``, ``table``), then the raw bytes:
a whole frame, or the damaged bytes as they were found. ``toolwatch deadletter list`` shows them and
``toolwatch deadletter replay`` puts whole frames back into the spool.

Several processes may set letters aside at once: every file has a name of its own and appears whole
(written under a temporary name, then renamed).
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from toolwatch.spool.frame import valid_at
from toolwatch.spool.segments import OPEN, SEALED, segment_name

Stage = Literal["proxy", "reader", "recorder"]
FOLDER = "deadletter"
SUFFIX = ".dead"
_counter = itertools.count()


@dataclass(frozen=True)
class DeadLetter:
    path: Path
    header: dict[str, Any]
    size: int  # bytes after the header line

    @property
    def error(self) -> str:
        return str(self.header.get("error", ""))

    def payload(self) -> bytes:
        data = self.path.read_bytes()
        return data[data.index(b"\n") + 1 :]


class DeadLetters:
    def __init__(self, spool: Path) -> None:
        self.directory = spool / FOLDER

    def put(self, stage: Stage, error: str, payload: Sequence[bytes], name: str | None = None, **about: Any) -> Path:
        """Set bytes aside with the reason; returns the file. Raises OSError when the disk refuses.

        ``name`` gives a letter a stable name, so setting the same thing aside twice keeps one file."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        name = f"{name or f'{now:%Y%m%dT%H%M%S%f}-{os.getpid()}-{next(_counter)}'}{SUFFIX}"
        header = {"stage": stage, "error": error[:2000], "at": now.isoformat(), **about}
        tmp = self.directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.writev(fd, [orjson.dumps(header, default=str) + b"\n", *payload])
        finally:
            os.close(fd)
        final = self.directory / name
        os.replace(tmp, final)
        return final

    def all(self) -> list[DeadLetter]:
        try:
            paths = sorted(p for p in self.directory.iterdir() if p.name.endswith(SUFFIX))
        except FileNotFoundError:
            return []
        letters = []
        for path in paths:
            try:
                with open(path, "rb") as fh:
                    line = fh.readline()
                    size = path.stat().st_size - len(line)
                header = orjson.loads(line)
            except (OSError, ValueError):
                header, size = {"error": "unreadable dead letter"}, 0
            letters.append(DeadLetter(path, header if isinstance(header, dict) else {}, size))
        return letters

    def replay(self) -> tuple[int, list[DeadLetter]]:
        """Put every dead letter holding a whole frame back into the spool, as one new sealed segment that
        the recorder reads like any other; those letters are removed. Returns how many were put back, and
        the letters that cannot be (damaged bytes, or a frame that is not whole), which stay."""
        kept: list[DeadLetter] = []
        frames: list[tuple[DeadLetter, bytes]] = []
        for letter in self.all():
            payload = letter.payload()
            if valid_at(payload, 0) == len(payload):
                frames.append((letter, payload))
            else:
                kept.append(letter)
        if frames:
            writer = f"replay{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"
            spool = self.directory.parent
            tmp = spool / segment_name(writer, 1, OPEN)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.writev(fd, [payload for _, payload in frames])
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, tmp.with_suffix(SEALED))
            for letter, _ in frames:
                letter.path.unlink(missing_ok=True)
        return len(frames), kept

    def count(self) -> int:
        try:
            return sum(1 for p in os.scandir(self.directory) if p.name.endswith(SUFFIX))
        except FileNotFoundError:
            return 0
