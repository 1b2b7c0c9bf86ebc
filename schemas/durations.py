"""Durations as people write them: ``90s``, ``30m``, ``24h``, ``7d``, ``2w``."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(text: str) -> float:
    """The duration in seconds; ValueError with a readable message otherwise."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 24h or 7d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def is_duration(text: str) -> bool:
    return _DURATION.match(text) is not None
