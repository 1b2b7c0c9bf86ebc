"""The recorder's spool reader: frames in order, commit and checkpoint, resynchronising after damage."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from toolwatch.schemas.exchange import Exchange
from toolwatch.spool.deadletter import DeadLetters
from toolwatch.spool.frame import encode
from toolwatch.spool.reader import CHECKPOINT, SpoolReader
from toolwatch.spool.segments import OPEN, SEALED, list_segments, segment_name
from toolwatch.spool.writer import SpoolWriter


def exchange(n: int) -> Exchange:
    return Exchange(
        id=uuid.UUID(int=n + 1),
        started_at=datetime(2025, 1, 1, tzinfo=UTC),
        upstream="openai",
        api="openai",
        method="POST",
        path="/v1/chat/completions",
    )


def frame(n: int, body: bytes = b"") -> bytes:
    return encode(exchange(n), b"req-%d" % n + body, b"resp-%d" % n)


def segment(directory: Path, seq: int, state: str, *parts: bytes, writer: str = "w0") -> Path:
    path = directory / segment_name(writer, seq, state)
    path.write_bytes(b"".join(parts))
    return path


def ids(frames: list) -> list[int]:  # type: ignore[type-arg]
    return [f.exchange.id.int - 1 for f in frames]


def names(directory: Path) -> list[str]:
    return [s.path.name for s in list_segments(directory)]


def test_empty_or_missing_spool(tmp_path: Path) -> None:
    r = SpoolReader(tmp_path / "absent")
    polled = r.poll()
    assert polled.frames == [] and polled.damaged == 0
    assert r.lag_bytes() == 0 and r.pending_bytes() == 0


def test_poll_returns_frames_in_order_across_segments(tmp_path: Path) -> None:
    segment(tmp_path, 2, SEALED, frame(2), frame(3))
    segment(tmp_path, 1, SEALED, frame(0), frame(1))
    segment(tmp_path, 1, SEALED, frame(10), writer="w1")
    segment(tmp_path, 3, OPEN, frame(4))
    r = SpoolReader(tmp_path)
    polled = r.poll()
    assert ids(polled.frames) == [0, 1, 10, 2, 3, 4]
    assert polled.frames[0].request == b"req-0" and polled.frames[0].response == b"resp-0"
    assert r.poll().frames == []  # nothing new


def test_poll_picks_up_appends_to_the_open_segment(tmp_path: Path) -> None:
    path = segment(tmp_path, 1, OPEN, frame(0))
    r = SpoolReader(tmp_path)
    assert ids(r.poll().frames) == [0]
    with open(path, "ab") as fh:
        fh.write(frame(1) + frame(2))
    assert ids(r.poll().frames) == [1, 2]


def test_a_frame_still_being_written_is_waited_for(tmp_path: Path) -> None:
    whole = frame(1)
    path = segment(tmp_path, 1, OPEN, frame(0), whole[:7])
    r = SpoolReader(tmp_path)
    polled = r.poll()
    assert ids(polled.frames) == [0] and polled.damaged == 0
    with open(path, "ab") as fh:
        fh.write(whole[7:30])
    assert r.poll().frames == []
    with open(path, "ab") as fh:
        fh.write(whole[30:])
    assert ids(r.poll().frames) == [1]
    assert r.damaged == 0


def test_commit_deletes_only_sealed_fully_read_segments(tmp_path: Path) -> None:
    segment(tmp_path, 1, SEALED, frame(0))
    segment(tmp_path, 2, OPEN, frame(1))
    r = SpoolReader(tmp_path)
    r.commit()  # nothing read yet: nothing deleted
    assert names(tmp_path) == ["w0-000000000001.seg", "w0-000000000002.open"]
    r.poll()
    r.commit()
    assert names(tmp_path) == ["w0-000000000002.open"]
    checkpoint = json.loads((tmp_path / CHECKPOINT).read_text())
    assert checkpoint == {"w0-000000000002": len(frame(1))}


def test_segment_sealed_after_it_was_read_is_deleted_on_the_next_commit(tmp_path: Path) -> None:
    path = segment(tmp_path, 1, OPEN, frame(0))
    r = SpoolReader(tmp_path)
    r.poll()
    r.commit()
    path.rename(path.with_suffix(SEALED))
    assert r.poll().frames == []  # the rename does not make it new
    r.commit()
    assert names(tmp_path) == []
    assert json.loads((tmp_path / CHECKPOINT).read_text()) == {}


def test_partly_read_sealed_segment_is_kept(tmp_path: Path) -> None:
    one = frame(0)
    segment(tmp_path, 1, SEALED, one, frame(1))
    r = SpoolReader(tmp_path)
    assert ids(r.poll(max_bytes=len(one)).frames) == [0]
    r.commit()
    assert names(tmp_path) == ["w0-000000000001.seg"]
    assert ids(r.poll().frames) == [1]
    r.commit()
    assert names(tmp_path) == []


def test_a_new_reader_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    path = segment(tmp_path, 1, OPEN, frame(0), frame(1))
    first = SpoolReader(tmp_path)
    assert ids(first.poll().frames) == [0, 1]
    first.commit()
    with open(path, "ab") as fh:
        fh.write(frame(2))
    second = SpoolReader(tmp_path)
    assert ids(second.poll().frames) == [2]


def test_polled_but_uncommitted_frames_are_read_again_after_restart(tmp_path: Path) -> None:
    segment(tmp_path, 1, SEALED, frame(0))
    segment(tmp_path, 2, SEALED, frame(1))
    first = SpoolReader(tmp_path)
    first.poll()
    first.commit()
    segment(tmp_path, 3, SEALED, frame(2))
    assert ids(first.poll().frames) == [2]  # polled, then the recorder dies before storing it
    second = SpoolReader(tmp_path)
    assert ids(second.poll().frames) == [2]


def test_unreadable_checkpoint_rereads_everything(tmp_path: Path) -> None:
    segment(tmp_path, 1, OPEN, frame(0))
    (tmp_path / CHECKPOINT).write_text("{not json")
    assert ids(SpoolReader(tmp_path).poll().frames) == [0]


def test_torn_frame_at_the_end_of_a_sealed_segment_is_skipped_and_counted(tmp_path: Path) -> None:
    segment(tmp_path, 1, SEALED, frame(0), frame(1)[:-3])  # its writer died mid-write
    segment(tmp_path, 2, SEALED, frame(2))
    r = SpoolReader(tmp_path)
    polled = r.poll()
    assert ids(polled.frames) == [0, 2]
    assert polled.damaged == 1 and r.damaged == 1
    assert r.pending_bytes() == 0
    r.commit()
    assert names(tmp_path) == []
    assert r.poll().damaged == 0  # counted once


def test_torn_header_at_the_end_of_a_sealed_segment(tmp_path: Path) -> None:
    segment(tmp_path, 1, SEALED, frame(0), frame(1)[:5])
    r = SpoolReader(tmp_path)
    polled = r.poll()
    assert ids(polled.frames) == [0] and polled.damaged == 1


def test_a_flipped_bit_loses_only_its_frame_which_is_set_aside(tmp_path: Path) -> None:
    bad = bytearray(frame(1))
    bad[-1] ^= 0xFF
    segment(tmp_path, 1, SEALED, frame(0), bytes(bad), frame(2))
    segment(tmp_path, 2, SEALED, frame(3))
    r = SpoolReader(tmp_path)
    polled = r.poll()
    assert ids(polled.frames) == [0, 2, 3]  # resynchronised at the next intact frame
    assert polled.damaged == 1
    assert r.pending_bytes() == 0
    [letter] = DeadLetters(tmp_path).all()
    assert letter.header["stage"] == "reader" and "checksum" in letter.error
    assert letter.payload() == bytes(bad)
    r.commit()
    assert names(tmp_path) == []


def test_garbage_between_frames_is_damage_and_reading_goes_on(tmp_path: Path) -> None:
    segment(tmp_path, 1, SEALED, frame(0), b"G" * 40, frame(1))
    r = SpoolReader(tmp_path)
    polled = r.poll()
    assert ids(polled.frames) == [0, 1] and polled.damaged == 1
    assert [d.payload() for d in DeadLetters(tmp_path).all()] == [b"G" * 40]


def test_a_frame_holding_another_frames_magic_is_not_split(tmp_path: Path) -> None:
    # a body may contain the magic bytes: only a magic with a valid frame after it resynchronises
    inner = frame(1)
    segment(tmp_path, 1, SEALED, frame(0, body=inner), frame(2))
    assert ids(SpoolReader(tmp_path).poll().frames) == [0, 2]


def test_damage_found_again_after_a_restart_is_set_aside_once(tmp_path: Path) -> None:
    segment(tmp_path, 1, SEALED, frame(0), b"G" * 40, frame(1))
    SpoolReader(tmp_path).poll()
    SpoolReader(tmp_path).poll()  # a restarted recorder reads the same damage again
    assert len(DeadLetters(tmp_path).all()) == 1


def test_lag_and_pending_bytes(tmp_path: Path) -> None:
    a, b, c = frame(0), frame(1), frame(2)
    segment(tmp_path, 1, SEALED, a, b)
    open_seg = segment(tmp_path, 2, OPEN, c)
    r = SpoolReader(tmp_path)
    total = len(a) + len(b) + len(c)
    assert r.lag_bytes() == total and r.pending_bytes() == total
    r.poll(max_bytes=len(a))
    assert r.pending_bytes() == len(b) + len(c)
    assert r.lag_bytes() == total  # read but not stored yet
    r.poll()
    assert r.pending_bytes() == 0 and r.lag_bytes() == total
    r.commit()
    assert r.lag_bytes() == 0 and r.pending_bytes() == 0
    with open(open_seg, "ab") as fh:
        fh.write(a)
    assert r.lag_bytes() == len(a) and r.pending_bytes() == len(a)


def test_poll_budget_limits_a_batch_but_keeps_order(tmp_path: Path) -> None:
    frames = [frame(i) for i in range(6)]
    segment(tmp_path, 1, SEALED, *frames[:3])
    segment(tmp_path, 2, SEALED, *frames[3:])
    r = SpoolReader(tmp_path)
    got: list[int] = []
    for _ in range(20):
        polled = r.poll(max_bytes=len(frames[0]) * 2 + 1)
        assert len(polled.frames) <= 2
        got += ids(polled.frames)
    assert got == list(range(6))
    assert r.damaged == 0


def test_frame_larger_than_the_budget_is_still_read(tmp_path: Path) -> None:
    big = frame(1, b"B" * 100_000)
    segment(tmp_path, 1, SEALED, big, frame(2))
    segment(tmp_path, 2, OPEN, frame(3, b"C" * 50_000))
    r = SpoolReader(tmp_path)
    first = r.poll(max_bytes=1000)
    assert ids(first.frames) == [1] and first.frames[0].request.endswith(b"B" * 100_000)
    got = ids(first.frames)
    for _ in range(5):
        got += ids(r.poll(max_bytes=1000).frames)
    assert got == [1, 2, 3]
    assert r.damaged == 0


def test_big_frame_still_being_written_is_not_damage(tmp_path: Path) -> None:
    big = frame(1, b"B" * 100_000)
    path = segment(tmp_path, 1, OPEN, big[:60_000])
    r = SpoolReader(tmp_path)
    assert r.poll(max_bytes=1000).frames == [] and r.damaged == 0
    with open(path, "ab") as fh:
        fh.write(big[60_000:])
    assert ids(r.poll(max_bytes=1000).frames) == [1]


def test_torn_frame_larger_than_the_budget_at_the_end_of_a_sealed_segment(tmp_path: Path) -> None:
    big = frame(1, b"B" * 100_000)
    segment(tmp_path, 1, SEALED, frame(0), big[:60_000])  # its writer died writing a large exchange
    r = SpoolReader(tmp_path)
    for _ in range(5):
        r.poll(max_bytes=1000)
    r.commit()
    assert r.damaged == 1
    assert r.pending_bytes() == 0
    assert names(tmp_path) == []


def test_corrupt_length_in_a_sealed_segment_larger_than_the_budget(tmp_path: Path) -> None:
    bad = bytearray(frame(1))
    bad[8:12] = (0x7FFFFFFF).to_bytes(4, "little")  # meta_len: claims ~2 GiB
    segment(tmp_path, 1, SEALED, frame(0), bytes(bad), *(frame(n, b"x" * 500) for n in range(2, 10)))
    segment(tmp_path, 2, SEALED, frame(10))
    r = SpoolReader(tmp_path)
    got: list[int] = []
    for _ in range(10):
        got += ids(r.poll(max_bytes=1000).frames)
    r.commit()
    assert got == [0, *range(2, 10), 10]  # only the frame with the corrupt length is lost
    assert r.damaged == 1
    assert names(tmp_path) == []


def test_damaged_open_segment_is_deleted_once_sealed(tmp_path: Path) -> None:
    bad = bytearray(frame(1))
    bad[-1] ^= 0xFF
    path = segment(tmp_path, 1, OPEN, frame(0), bytes(bad))
    r = SpoolReader(tmp_path)
    assert r.poll().damaged == 0  # no intact frame after it yet: the segment may still grow
    with open(path, "ab") as fh:  # the writer goes on appending, then seals the segment
        fh.write(frame(2))
    polled = r.poll()
    assert ids(polled.frames) == [2] and polled.damaged == 1
    path.rename(path.with_suffix(SEALED))
    r.poll()
    r.commit()
    assert names(tmp_path) == []
    assert r.lag_bytes() == 0


async def test_crash_inside_commit_loses_no_frames_of_a_restarted_writer(tmp_path: Path) -> None:
    def writer() -> SpoolWriter:
        return SpoolWriter(tmp_path, cap_bytes=1 << 30, segment_bytes=1 << 20, segment_max_age=3600.0)

    proxy = writer()
    await proxy.start()
    proxy.append(exchange(0), b"q", b"r")
    recorder = SpoolReader(tmp_path)
    got: list[int] = []
    for _ in range(500):
        got += ids(recorder.poll().frames)
        if got:
            break
        await asyncio.sleep(0.01)
    assert got == [0]
    recorder.commit()  # checkpoint: the open segment w0-1 is read up to its end
    await proxy.close()  # sealed
    (tmp_path / "recorder.tmp").mkdir()  # the checkpoint cannot be saved: the recorder "dies" in commit
    with pytest.raises(OSError):
        recorder.commit()
    (tmp_path / "recorder.tmp").rmdir()
    proxy = writer()  # the proxy restarts on an empty spool and numbers its segments from 1 again
    await proxy.start()
    proxy.append(exchange(1), b"q", b"r")
    await proxy.close()
    assert ids(SpoolReader(tmp_path).poll().frames) == [1]


def test_a_budget_ending_inside_a_segment_keeps_the_order(tmp_path: Path) -> None:
    # found by the stateful test: the reader used to go on to the next segment with what was left of
    # its budget, returning frame 2 before frame 1
    segment(tmp_path, 1, SEALED, frame(0), frame(1))
    segment(tmp_path, 2, SEALED, frame(2))
    r = SpoolReader(tmp_path)
    got: list[int] = []
    for _ in range(4):
        got += ids(r.poll(max_bytes=len(frame(0)) + 20).frames)
    assert got == [0, 1, 2]
