"""UUIDv7 (RFC 9562): time-ordered ids, so records sort by creation and ids stay unique across replicas."""

from __future__ import annotations

import os
import time
import uuid

_POOL = 4096  # random bytes read per system call; ten per id
_random = b""
_offset = _POOL


def _random_bits() -> int:
    global _random, _offset
    if _offset + 10 > len(_random):
        _random, _offset = os.urandom(_POOL), 0
    chunk = _random[_offset : _offset + 10]
    _offset += 10
    return int.from_bytes(chunk, "big")


def uuid7() -> uuid.UUID:
    ms = time.time_ns() // 1_000_000
    rand = _random_bits()
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)
