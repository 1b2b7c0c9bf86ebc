"""Content decoders: every coding a provider or a gateway may send, stacked codings, bodies cut short,
and a compression bomb that stops at the limit instead of exhausting the recorder's memory."""

from __future__ import annotations

import gzip
import hashlib
import zlib

import brotli
import pytest
import zstandard

from toolwatch.providers.decoders import DecodeError, decode_body, decoder_for

BODY = (
    b'{"choices": [{"message": {"content": "caf\xc3\xa9 ' + hashlib.sha256(b"x").hexdigest().encode() * 200 + b'"}}]}'
)


def deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        (None, lambda b: b),
        ("identity", lambda b: b),
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("GZIP ", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", deflate_raw),
        ("br", brotli.compress),  # decoded since the restructure: it used to record an empty parse
        ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
        ("gzip, br", lambda b: brotli.compress(gzip.compress(b))),  # applied left to right
        ("zstd,gzip", lambda b: gzip.compress(zstandard.ZstdCompressor().compress(b))),
    ],
)
def test_every_coding_decodes(encoding: str | None, encode: object) -> None:
    assert decode_body(encode(BODY), encoding) == BODY  # type: ignore[operator]


def test_a_body_cut_short_yields_what_arrived() -> None:
    cut = gzip.compress(BODY)[:-40]
    got = decode_body(cut, "gzip")
    assert BODY.startswith(got) and len(got) > 1000


def test_unknown_and_wrong_codings_are_errors() -> None:
    with pytest.raises(DecodeError, match="unsupported content-encoding 'snappy'"):
        decode_body(b"abc", "snappy")
    with pytest.raises(DecodeError):
        decode_body(b"not gzip at all", "gzip")
    with pytest.raises(DecodeError):
        decode_body(b"not brotli", "br")


def test_a_compression_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (20 * 1024 * 1024))  # 20 MiB of zeros in ~20 kB
    with pytest.raises(DecodeError, match="larger than"):
        decode_body(bomb, "gzip", limit=1024 * 1024)
    assert len(decode_body(bomb, "gzip")) == 20 * 1024 * 1024  # under the default limit


def test_decoders_take_any_split() -> None:
    data = brotli.compress(gzip.compress(BODY))
    for step in (1, 7, 1000):
        decoder = decoder_for("gzip, br")
        out = b"".join(decoder.decode(data[i : i + step]) for i in range(0, len(data), step)) + decoder.flush()
        assert out == BODY
