"""The proxy's spool writer: appends land in an .open segment, are sealed on roll or close, and a full
spool drops (and counts) instead of blocking."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from toolwatch.schemas.errors import SpoolError
from toolwatch.schemas.exchange import Exchange
from toolwatch.spool.deadletter import DeadLetters
from toolwatch.spool.frame import Frame, decode, encode, frame_size
from toolwatch.spool.segments import OPEN, SEALED, list_segments, segment_name
from toolwatch.spool.writer import SpoolWriter

MiB = 1024 * 1024


def exchange(n: int = 0) -> Exchange:
    return Exchange(
        id=uuid.UUID(int=n + 1),
        started_at=datetime(2025, 1, 1, tzinfo=UTC),
        upstream="openai",
        api="openai",
        method="POST",
        path="/v1/chat/completions",
        status=200,
    )


def read_frames(path: Path) -> list[Frame]:
    data = path.read_bytes()
    frames, pos = [], 0
    while pos < len(data):
        size = frame_size(data, pos)
        assert size is not None
        frames.append(decode(data, pos))
        pos += size
    return frames


def all_frames(directory: Path) -> list[Frame]:
    return [f for seg in list_segments(directory) for f in read_frames(seg.path)]


def states(directory: Path) -> list[tuple[int, str]]:
    return [(s.seq, s.state) for s in list_segments(directory)]


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for the flusher thread; the timeout only guards against hanging, it is not what is tested."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


def make(directory: Path, **kw: object) -> SpoolWriter:
    opts: dict[str, object] = {"cap_bytes": 64 * MiB, "segment_bytes": 8 * MiB, "segment_max_age": 3600.0}
    opts.update(kw)
    return SpoolWriter(directory, **opts)  # type: ignore[arg-type]


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[SpoolWriter]:
    w = make(tmp_path / "spool")
    await w.start()
    try:
        yield w
    finally:
        await w.close()


async def test_start_creates_the_directory(tmp_path: Path) -> None:
    w = make(tmp_path / "a" / "b")
    await w.start()
    await w.close()
    assert (tmp_path / "a" / "b").is_dir()


async def test_start_fails_clearly_when_the_directory_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    w = make(tmp_path / "file" / "spool")
    with pytest.raises(SpoolError, match="cannot create spool directory"):
        await w.start()


async def test_append_is_flushed_into_an_open_segment(spool: SpoolWriter) -> None:
    assert spool.append(exchange(1), b"req-1", b"resp-1") is True
    await until(lambda: states(spool.directory) == [(1, OPEN)] and spool.bytes_on_disk > 0)
    seg = list_segments(spool.directory)[0]
    await until(lambda: seg.path.stat().st_size > 0)
    assert read_frames(seg.path) == [Frame(exchange(1), b"req-1", b"resp-1")]
    assert spool.appended == 1 and spool.dropped == 0


async def test_close_writes_pending_and_seals(tmp_path: Path) -> None:
    w = make(tmp_path)
    await w.start()
    for i in range(5):
        assert w.append(exchange(i), f"q{i}".encode(), f"r{i}".encode())
    await w.close()
    assert states(tmp_path) == [(1, SEALED)]
    assert [(f.exchange.id, f.request, f.response) for f in all_frames(tmp_path)] == [
        (exchange(i).id, f"q{i}".encode(), f"r{i}".encode()) for i in range(5)
    ]
    assert w.appended == 5


async def test_close_without_appends_leaves_no_segment(tmp_path: Path) -> None:
    w = make(tmp_path)
    await w.start()
    await w.close()
    assert list_segments(tmp_path) == []


async def test_append_after_close_is_dropped(tmp_path: Path) -> None:
    w = make(tmp_path)
    await w.start()
    await w.close()
    assert w.append(exchange(), b"q", b"r") is False
    assert w.dropped == 1 and w.appended == 0


async def test_rolls_by_segment_size(tmp_path: Path) -> None:
    w = make(tmp_path, segment_bytes=1)  # every write fills the segment
    await w.start()
    for i in range(3):
        w.append(exchange(i), b"q", b"r")
        await until(lambda i=i: len(all_frames(tmp_path)) == i + 1)
    assert states(tmp_path) == [(1, SEALED), (2, SEALED), (3, OPEN)]
    await w.close()
    assert states(tmp_path) == [(1, SEALED), (2, SEALED), (3, SEALED)]
    assert [f.exchange.id for f in all_frames(tmp_path)] == [exchange(i).id for i in range(3)]


async def test_a_segment_below_the_size_is_kept_open(tmp_path: Path) -> None:
    w = make(tmp_path, segment_bytes=MiB)
    await w.start()
    for i in range(3):
        w.append(exchange(i), b"q", b"r")
        await until(lambda i=i: len(all_frames(tmp_path)) == i + 1)
    assert states(tmp_path) == [(1, OPEN)]
    await w.close()


async def test_rolls_by_age_without_new_appends(tmp_path: Path) -> None:
    w = make(tmp_path, segment_max_age=0.01)
    await w.start()
    try:
        w.append(exchange(), b"q", b"r")
        await until(lambda: states(tmp_path) == [(1, SEALED)])
        assert len(all_frames(tmp_path)) == 1
        w.append(exchange(1), b"q", b"r")
        await until(lambda: states(tmp_path) == [(1, SEALED), (2, SEALED)])
    finally:
        await w.close()


async def test_cap_drops_and_counts(tmp_path: Path) -> None:
    body = b"x" * 100
    per = len(encode(exchange(0), body, body))
    w = make(tmp_path, cap_bytes=3 * per + per // 2)
    await w.start()
    results = [w.append(exchange(i), body, body) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert (w.appended, w.dropped) == (3, 2)
    await w.close()
    assert len(all_frames(tmp_path)) == 3


async def test_cap_counts_segments_already_on_disk(tmp_path: Path) -> None:
    # a backlog left by another writer that the recorder has not consumed yet
    (tmp_path / segment_name("other", 1, SEALED)).write_bytes(b"\0" * 5000)
    w = make(tmp_path, cap_bytes=5000 + len(encode(exchange(), b"", b"")) + 10)
    await w.start()
    assert w.bytes_on_disk == 5000
    assert w.append(exchange(), b"", b"") is True
    assert w.append(exchange(1), b"", b"") is False
    await w.close()


async def test_room_frees_up_when_segments_are_deleted(tmp_path: Path) -> None:
    w = make(tmp_path, cap_bytes=2 * len(encode(exchange(0), b"", b"")) + 10, segment_bytes=1)
    await w.start()
    try:
        assert w.append(exchange(0), b"", b"") and w.append(exchange(1), b"", b"")
        assert w.append(exchange(2), b"", b"") is False
        await until(lambda: len(all_frames(tmp_path)) == 2)
        await until(lambda: any(s.state == SEALED for s in list_segments(tmp_path)))
        for seg in list_segments(tmp_path):  # what the recorder does once they are stored
            if seg.state == SEALED:
                seg.path.unlink()
        await until(lambda: w.append(exchange(3), b"", b""))
    finally:
        await w.close()
    assert w.dropped >= 1
    assert exchange(3).id in [f.exchange.id for f in all_frames(tmp_path)]


async def test_stale_open_segment_is_sealed_on_start(tmp_path: Path) -> None:
    stale = tmp_path / segment_name("w0", 4, OPEN)
    stale.write_bytes(encode(exchange(9), b"q", b"r"))
    foreign = tmp_path / segment_name("w1", 1, OPEN)  # another live writer's segment: not ours to seal
    foreign.write_bytes(b"")
    w = make(tmp_path)
    await w.start()
    assert not stale.exists()
    assert (tmp_path / segment_name("w0", 4, SEALED)).exists()
    assert foreign.exists()
    await w.close()


async def test_sequence_continues_after_restart(tmp_path: Path) -> None:
    first = make(tmp_path)
    await first.start()
    first.append(exchange(0), b"q", b"r")
    await first.close()
    (tmp_path / segment_name("w1", 40, SEALED)).write_bytes(b"")  # another writer's numbers do not count
    second = make(tmp_path)
    await second.start()
    second.append(exchange(1), b"q", b"r")
    await second.close()
    assert [(s.writer, s.seq, s.state) for s in list_segments(tmp_path)] == [
        ("w0", 1, SEALED),
        ("w0", 2, SEALED),
        ("w1", 40, SEALED),
    ]
    assert [f.exchange.id for f in all_frames(tmp_path)] == [exchange(0).id, exchange(1).id]


async def test_sequence_continues_after_a_crash(tmp_path: Path) -> None:
    (tmp_path / segment_name("w0", 7, OPEN)).write_bytes(b"")
    w = make(tmp_path)
    await w.start()
    w.append(exchange(), b"q", b"r")
    await w.close()
    assert states(tmp_path) == [(7, SEALED), (8, SEALED)]


async def test_writer_id_names_the_segments(tmp_path: Path) -> None:
    w = make(tmp_path, writer_id="proxy-2")
    await w.start()
    w.append(exchange(), b"q", b"r")
    await w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proxy-2-000000000001.seg", "proxy-2.seq"]


async def test_numbers_are_not_reused_after_the_spool_was_emptied(tmp_path: Path) -> None:
    w = make(tmp_path)
    await w.start()
    w.append(exchange(0), b"q", b"r")
    await w.close()
    for seg in list_segments(tmp_path):
        seg.path.unlink()  # the recorder stored and deleted everything
    w = make(tmp_path)
    await w.start()
    w.append(exchange(1), b"q", b"r")
    await w.close()
    assert states(tmp_path) == [(2, SEALED)]


async def test_write_failure_is_counted_not_raised(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    w = make(directory)
    await w.start()
    directory.rmdir()  # the spool vanished under the writer
    assert w.append(exchange(), b"q", b"r") is False
    assert (w.write_errors, w.refused, w.appended) == (1, 1, 0)
    directory.mkdir()  # and came back: recording goes on
    assert w.append(exchange(1), b"q", b"r") is True
    await w.close()
    assert [f.exchange.id for f in all_frames(directory)] == [exchange(1).id]


# -- regressions: nothing ends recording, nothing is torn ------------------------------------------


async def test_a_failed_seal_never_reuses_a_closed_descriptor(tmp_path: Path) -> None:
    # A second `serve` on the same spool used to rename the live writer's open segment; the seal then
    # failed after closing the descriptor, and later writes went to whatever reused that number.
    w = make(tmp_path, segment_bytes=1)
    await w.start()
    assert w.append(exchange(0), b"q", b"r")
    [seg] = list_segments(tmp_path)
    seg.path.rename(tmp_path / "moved-away")  # behind the writer's back
    r, s = os.pipe()  # descriptors opened now may take the number the writer closes
    try:
        assert w.append(exchange(1), b"q", b"r")  # seals (the rename fails), then a new segment
        assert w.append(exchange(2), b"q", b"r")
        os.write(s, b"still mine")
        assert os.read(r, 100) == b"still mine"
    finally:
        os.close(r)
        os.close(s)
    await w.close()
    assert [f.exchange.id.int - 1 for f in all_frames(tmp_path)] == [1, 2]


async def test_a_frame_that_cannot_be_encoded_is_set_aside_and_recording_goes_on(tmp_path: Path) -> None:
    w = make(tmp_path)
    await w.start()
    bad = exchange(0).model_copy(update={"session_id": "caf\udce9"})  # bypasses capture's cleaning
    assert w.append(bad, b"req", b"resp") is False
    assert w.append(exchange(1), b"q", b"r") is True
    await w.close()
    assert w.encode_errors == 1 and w.appended == 1
    [letter] = DeadLetters(tmp_path).all()
    assert letter.header["stage"] == "proxy" and letter.header["exchange_id"] == str(bad.id)
    frame = decode(letter.payload())  # kept as a whole frame of its cleaned copy: it can be replayed
    assert frame.exchange.session_id == "caf\ufffd" and frame.request == b"req"
    assert [f.exchange.id for f in all_frames(tmp_path)] == [exchange(1).id]


async def test_the_ticker_outlives_its_own_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}

    def broken(directory: Path) -> int:
        calls["n"] += 1
        raise RuntimeError("boom")

    w = make(tmp_path, recount_every=0.0)
    await w.start()
    monkeypatch.setattr("toolwatch.spool.writer.spool_bytes", broken)
    await until(lambda: calls["n"] >= 3)
    assert w.healthy
    assert w.append(exchange(0), b"q", b"r")
    await w.close()


async def test_data_is_made_durable_within_the_fsync_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr("toolwatch.spool.writer.os.fdatasync", lambda fd: (synced.append(fd), real(fd)))
    w = make(tmp_path, fsync_interval=0.05)
    await w.start()
    w.append(exchange(0), b"q", b"r")
    await until(lambda: len(synced) >= 1)
    await w.close()


SHORT_WRITE = """
import asyncio, resource, sys, uuid
from datetime import UTC, datetime
from pathlib import Path
from toolwatch.schemas.exchange import Exchange
from toolwatch.spool.writer import SpoolWriter

async def main():
    w = SpoolWriter(Path(sys.argv[1]), cap_bytes=1 << 30, segment_bytes=1 << 30, segment_max_age=3600.0)
    await w.start()
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # the "disk" holds 20 kB per file
    ok = []
    for n in range(60):
        ex = Exchange(id=uuid.UUID(int=n + 1), started_at=datetime(2025, 1, 1, tzinfo=UTC), upstream="openai",
                      api="openai", method="POST", path="/p", status=200)
        ok.append(w.append(ex, b"x" * 1500, b"y" * 1500))
    await w.close()
    print(",".join("1" if o else "0" for o in ok), w.refused)

asyncio.run(main())
"""


def test_a_short_write_is_rolled_back_and_what_follows_is_recorded(tmp_path: Path) -> None:
    # a full disk used to leave a torn frame mid-segment: everything written after it was unreadable
    spool = tmp_path / "spool"
    out = subprocess.run(
        [sys.executable, "-c", SHORT_WRITE, str(spool)], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    ok = [c == "1" for c in out[0].split(",")]
    refused = int(out[1])
    assert refused == ok.count(False) >= 1
    # refused when a segment hits the limit, then recorded again at once, in a new segment
    assert all(ok[i + 1] for i, written in enumerate(ok[:-1]) if not written)
    got = [f.exchange.id.int - 1 for f in all_frames(spool)]
    assert got == [n for n, written in enumerate(ok) if written]
    for seg in list_segments(spool):
        assert seg.path.stat().st_size <= 20_000
