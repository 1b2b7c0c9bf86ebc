"""Content decoders: undo a response's ``Content-Encoding`` before it is parsed (the proxy forwards it
still encoded). Modelled on httpx's ``_decoders.py``: small classes with ``decode(chunk)`` and ``flush()``,
listed in a registry, and a ``MultiDecoder`` for stacked encodings (``Content-Encoding: gzip, br`` was
applied left to right, so it is undone right to left).

A body cut short (a client abort, a timeout) still yields the prefix that decodes: ``flush`` never
raises because an encoded stream ended early. A body that is not in the encoding it claims raises
``DecodeError``, which the caller turns into a parse note.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli
import zstandard

__all__ = ["DECODERS", "DecodeError", "decode_body", "decoder_for"]


class DecodeError(ValueError):
    """The bytes are not in the encoding they claim, or the encoding is unknown."""


class ContentDecoder(Protocol):
    def decode(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class IdentityDecoder:
    def decode(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class ZlibDecoder:
    """gzip (``wbits=31``) or deflate. ``deflate`` in the wild is zlib-wrapped or raw: the first bytes tell."""

    def __init__(self, wbits: int, raw_fallback: bool = False) -> None:
        self._wbits = wbits
        self._raw_fallback = raw_fallback
        self._inflater = zlib.decompressobj(wbits)
        self._started = False

    def decode(self, data: bytes) -> bytes:
        try:
            out = self._inflater.decompress(data)
        except zlib.error as e:
            if self._raw_fallback and not self._started:
                self._raw_fallback, self._inflater = False, zlib.decompressobj(-zlib.MAX_WBITS)
                return self.decode(data)
            raise DecodeError(str(e)) from e
        self._started = self._started or bool(data)
        return out

    def flush(self) -> bytes:
        try:
            return self._inflater.flush()
        except zlib.error as e:  # pragma: no cover - flush of a decompressobj does not raise in practice
            raise DecodeError(str(e)) from e


class GZipDecoder(ZlibDecoder):
    def __init__(self) -> None:
        super().__init__(31)


class DeflateDecoder(ZlibDecoder):
    def __init__(self) -> None:
        super().__init__(zlib.MAX_WBITS, raw_fallback=True)


class BrotliDecoder:
    def __init__(self) -> None:
        self._decompressor = brotli.Decompressor()

    def decode(self, data: bytes) -> bytes:
        try:
            return bytes(self._decompressor.process(data))
        except brotli.error as e:
            raise DecodeError(str(e) or "not brotli") from e

    def flush(self) -> bytes:
        return b""


class ZstdDecoder:
    def __init__(self) -> None:
        self._decompressor = zstandard.ZstdDecompressor().decompressobj()

    def decode(self, data: bytes) -> bytes:
        try:
            return bytes(self._decompressor.decompress(data))
        except zstandard.ZstdError as e:
            raise DecodeError(str(e)) from e

    def flush(self) -> bytes:
        try:
            return bytes(self._decompressor.flush())
        except zstandard.ZstdError:  # the frame was complete: nothing is left
            return b""


class MultiDecoder:
    """Stacked encodings: ``children`` in the order they are undone."""

    def __init__(self, children: list[ContentDecoder]) -> None:
        self.children = children

    def decode(self, data: bytes) -> bytes:
        for child in self.children:
            data = child.decode(data)
        return data

    def flush(self) -> bytes:
        data = b""
        for child in self.children:
            data = (child.decode(data) if data else b"") + child.flush()
        return data


DECODERS: dict[str, type[ContentDecoder]] = {
    "identity": IdentityDecoder,
    "gzip": GZipDecoder,
    "x-gzip": GZipDecoder,
    "deflate": DeflateDecoder,
    "br": BrotliDecoder,
    "zstd": ZstdDecoder,
}


def decoder_for(encoding: str | None) -> ContentDecoder:
    """The decoder for a ``Content-Encoding`` header value; raises DecodeError for an unknown coding."""
    names = [n.strip().lower() for n in (encoding or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in DECODERS]
    if unknown:
        raise DecodeError(f"unsupported content-encoding {unknown[0]!r}")
    children = [DECODERS[n]() for n in reversed(names) if n != "identity"]
    if not children:
        return IdentityDecoder()
    return children[0] if len(children) == 1 else MultiDecoder(children)


MAX_DECODED = 128 * 1024 * 1024  # a compression bomb stops here instead of exhausting the recorder's memory
_STEP = 64 * 1024  # input fed at a time: one step expands to at most ~64 MiB (gzip's ratio is ~1000:1)


def decode_body(data: bytes, encoding: str | None, limit: int = MAX_DECODED) -> bytes:
    """A whole body decoded (what arrived of it, when it was cut short). Raises DecodeError past ``limit``."""
    if not data or not encoding:  # no Content-Encoding: the bytes as they are
        return data
    decoder = decoder_for(encoding)
    if isinstance(decoder, IdentityDecoder):
        return data
    out: list[bytes] = []
    size = 0
    view = memoryview(data)
    for start in range(0, len(data), _STEP):
        piece = decoder.decode(bytes(view[start : start + _STEP]))
        size += len(piece)
        if size > limit:
            raise DecodeError(f"the decoded body is larger than {limit} bytes: not parsed")
        out.append(piece)
    out.append(decoder.flush())
    return b"".join(out)
