"""Naming and listing of spool segment files, shared by the writer and the reader."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

OPEN = ".open"
SEALED = ".seg"


@dataclass(frozen=True)
class Segment:
    path: Path
    writer: str
    seq: int
    state: str  # OPEN or SEALED

    @property
    def key(self) -> str:
        """Stable across the rename from .open to .seg."""
        return f"{self.writer}-{self.seq:012d}"


def segment_name(writer: str, seq: int, state: str) -> str:
    return f"{writer}-{seq:012d}{state}"


def list_segments(directory: Path) -> list[Segment]:
    """Segments in append order (by sequence, then writer)."""
    found: list[Segment] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        stem, dot, ext = entry.name.rpartition(".")
        if not dot or "." + ext not in (OPEN, SEALED):
            continue
        writer, _, seq = stem.rpartition("-")
        if not writer or not seq.isdigit():
            continue
        found.append(Segment(Path(entry.path), writer, int(seq), "." + ext))
    found.sort(key=lambda s: (s.seq, s.writer))
    return found


def spool_bytes(directory: Path) -> int:
    total = 0
    for seg in list_segments(directory):
        try:
            total += seg.path.stat().st_size
        except FileNotFoundError:  # deleted by the recorder, or renamed while we looked
            continue
    return total
