"""The spool frame: encode/decode round trips, and every way a damaged frame is refused."""

from __future__ import annotations

import struct
import uuid
import zlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolwatch.schemas.errors import FrameError, SpoolError
from toolwatch.schemas.exchange import Exchange
from toolwatch.spool.frame import HEADER_SIZE, MAGIC, Frame, decode, encode, frame_size

EX = Exchange(
    id=uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057"),
    started_at=datetime(2025, 9, 15, 12, 0, 0, 123000, tzinfo=UTC),
    upstream="openai",
    api="openai",
    method="POST",
    path="/v1/chat/completions",
    status=200,
    session_id="s-1",
    properties={"env": "ci", "ü": "ß"},
    response_headers={"x-request-id": "req_1"},
)


def _frame_with_meta(meta: bytes, request: bytes = b"", response: bytes = b"") -> bytes:
    """A frame with a correct checksum around arbitrary metadata bytes."""
    lengths = struct.pack("<III", len(meta), len(request), len(response))
    crc = zlib.crc32(lengths + meta + request + response)
    return MAGIC + struct.pack("<I", crc) + lengths + meta + request + response


def test_round_trip() -> None:
    data = encode(EX, b'{"model":"x"}', b"data: [DONE]\n\n")
    assert decode(data) == Frame(EX, b'{"model":"x"}', b"data: [DONE]\n\n")
    assert frame_size(data) == len(data)


def test_layout_header() -> None:
    data = encode(EX, b"abc", b"de")
    magic, _crc, m, q, r = struct.unpack_from("<4sIIII", data)
    assert magic == b"TWF1"
    assert (q, r) == (3, 2)
    assert HEADER_SIZE == 20
    assert len(data) == HEADER_SIZE + m + q + r
    assert data[-5:] == b"abcde"


@settings(deadline=None)  # timing is not what is tested; a loaded machine must not fail it
@given(request=st.binary(max_size=2048), response=st.binary(max_size=2048), prefix=st.binary(max_size=64))
def test_round_trip_any_bytes_at_any_offset(request: bytes, response: bytes, prefix: bytes) -> None:
    data = encode(EX, request, response)
    buf = prefix + data + b"trailing"
    frame = decode(buf, len(prefix))
    assert frame.request == request
    assert frame.response == response
    assert frame.exchange == EX
    assert frame_size(buf, len(prefix)) == len(data)


@settings(deadline=None)
@given(request=st.binary(max_size=512), response=st.binary(max_size=512))
def test_frames_decode_back_to_back(request: bytes, response: bytes) -> None:
    a, b = encode(EX, request, response), encode(EX, response, request)
    buf = memoryview(a + b)
    first = decode(buf, 0)
    n = frame_size(buf, 0)
    assert n is not None
    second = decode(buf, n)
    assert (first.request, first.response) == (request, response)
    assert (second.request, second.response) == (response, request)


@settings(deadline=None)
@given(data=st.data())
def test_any_single_flipped_byte_is_detected(data: st.DataObject) -> None:
    frame = bytearray(encode(EX, b"request-bytes", b"response-bytes"))
    pos = data.draw(st.integers(0, len(frame) - 1))
    flip = data.draw(st.integers(1, 255))
    frame[pos] ^= flip
    with pytest.raises(FrameError):
        decode(bytes(frame))


def test_checksum_mismatch() -> None:
    frame = bytearray(encode(EX, b"req", b"resp"))
    frame[-1] ^= 0x01
    with pytest.raises(FrameError, match="checksum"):
        decode(bytes(frame))


def test_bad_magic() -> None:
    frame = b"TWF9" + encode(EX, b"", b"")[4:]
    with pytest.raises(FrameError, match="magic"):
        decode(frame)
    with pytest.raises(FrameError, match="magic"):
        frame_size(frame)


def test_bad_magic_reports_its_offset() -> None:
    buf = encode(EX, b"", b"") + b"X" * HEADER_SIZE
    with pytest.raises(FrameError, match=f"offset {len(buf) - HEADER_SIZE}"):
        frame_size(buf, len(buf) - HEADER_SIZE)


@pytest.mark.parametrize("keep", [0, 1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 5, -1])
def test_truncated_frame(keep: int) -> None:
    data = encode(EX, b"request", b"response")
    with pytest.raises(FrameError, match="truncated"):
        decode(data[:keep])


def test_frame_size_on_a_partial_header_is_none() -> None:
    data = encode(EX, b"q", b"r")
    for keep in range(HEADER_SIZE):
        assert frame_size(data[:keep]) is None
    assert frame_size(data[:HEADER_SIZE]) == len(data)  # the header alone gives the size
    assert frame_size(data, len(data)) is None
    assert frame_size(data + data[:7], len(data)) is None


def test_metadata_that_is_not_an_exchange_is_a_frame_error() -> None:
    with pytest.raises(FrameError, match="metadata"):
        decode(_frame_with_meta(b'{"id": "not-a-uuid"}'))
    with pytest.raises(FrameError, match="metadata"):
        decode(_frame_with_meta(b"\xff\xfe not json"))


def test_frame_error_is_a_spool_error() -> None:
    assert issubclass(FrameError, SpoolError)
