"""The spool frame: one finished exchange as bytes.

Layout (little-endian)::

    b"TWF1" | crc32 u32 | meta_len u32 | request_len u32 | response_len u32 | meta | request | response

``meta`` is the Exchange as JSON; the CRC covers the three length fields and the payload. The layout
lives only here, behind ``encode`` and ``decode``, so a later format can add a new magic.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from toolwatch.schemas.errors import FrameError
from toolwatch.schemas.exchange import Exchange

MAGIC = b"TWF1"
_HEAD = struct.Struct("<4sIIII")
HEADER_SIZE = _HEAD.size


@dataclass(frozen=True)
class Frame:
    exchange: Exchange
    request: bytes
    response: bytes


def encode_parts(exchange: Exchange, request: bytes, response: bytes) -> list[bytes]:
    """The frame as the pieces ``os.writev`` takes: the bodies are not copied."""
    meta = exchange.model_dump_json().encode()
    lengths = struct.pack("<III", len(meta), len(request), len(response))
    crc = zlib.crc32(response, zlib.crc32(request, zlib.crc32(meta, zlib.crc32(lengths))))
    return [MAGIC + struct.pack("<I", crc) + lengths, meta, request, response]


def encode(exchange: Exchange, request: bytes, response: bytes) -> bytes:
    return b"".join(encode_parts(exchange, request, response))


def valid_at(buf: bytes | memoryview, offset: int) -> int | None:
    """The size of a whole, intact frame starting at ``offset`` (checksum verified), else None."""
    try:
        size = frame_size(buf, offset)
    except FrameError:
        return None
    if size is None or len(buf) - offset < size:
        return None
    crc = _HEAD.unpack_from(buf, offset)[1]
    return size if zlib.crc32(memoryview(buf)[offset + 8 : offset + size]) == crc else None


def resync(buf: bytes | memoryview, offset: int) -> int | None:
    """Where the next intact frame after damage at ``offset`` starts, or None if there is none in ``buf``."""
    data = bytes(buf) if isinstance(buf, memoryview) else buf
    pos = data.find(MAGIC, offset + 1)
    while pos != -1:
        if valid_at(data, pos) is not None:
            return pos
        pos = data.find(MAGIC, pos + 1)
    return None


def frame_size(buf: bytes | memoryview, offset: int = 0) -> int | None:
    """Size of the frame starting at ``offset``, or None if its header is not all there yet."""
    if len(buf) - offset < HEADER_SIZE:
        return None
    magic, _crc, m, q, r = _HEAD.unpack_from(buf, offset)
    if magic != MAGIC:
        raise FrameError(f"bad frame magic {bytes(magic)!r} at offset {offset}")
    return int(HEADER_SIZE + m + q + r)


def decode(buf: bytes | memoryview, offset: int = 0) -> Frame:
    """Decode one whole frame at ``offset``; raises FrameError when it is damaged."""
    size = frame_size(buf, offset)
    if size is None or len(buf) - offset < size:
        raise FrameError(f"truncated frame at offset {offset}")
    _magic, crc, m, q, r = _HEAD.unpack_from(buf, offset)
    view = memoryview(buf)[offset + 8 : offset + size]
    if zlib.crc32(view) != crc:
        raise FrameError(f"frame checksum mismatch at offset {offset}")
    start = offset + HEADER_SIZE
    meta = bytes(buf[start : start + m])
    request = bytes(buf[start + m : start + m + q])
    response = bytes(buf[start + m + q : start + m + q + r])
    try:
        exchange = Exchange.model_validate_json(meta)
    except ValueError as e:
        raise FrameError(f"frame metadata does not decode at offset {offset}: {e}") from e
    return Frame(exchange, request, response)
