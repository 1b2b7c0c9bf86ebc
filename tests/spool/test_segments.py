"""Segment naming and listing, shared by the spool writer and reader."""

from __future__ import annotations

from pathlib import Path

from toolwatch.spool.segments import OPEN, SEALED, Segment, list_segments, segment_name, spool_bytes


def touch(directory: Path, name: str, size: int = 0) -> Path:
    path = directory / name
    path.write_bytes(b"x" * size)
    return path


def test_segment_name_pads_the_sequence() -> None:
    assert segment_name("w0", 7, OPEN) == "w0-000000000007.open"
    assert segment_name("w0", 7, SEALED) == "w0-000000000007.seg"


def test_key_is_stable_across_the_rename(tmp_path: Path) -> None:
    opened = Segment(tmp_path / segment_name("w0", 3, OPEN), "w0", 3, OPEN)
    sealed = Segment(tmp_path / segment_name("w0", 3, SEALED), "w0", 3, SEALED)
    assert opened.key == sealed.key == "w0-000000000003"


def test_list_parses_writer_sequence_and_state(tmp_path: Path) -> None:
    touch(tmp_path, segment_name("proxy-a", 12, OPEN))
    [seg] = list_segments(tmp_path)
    assert seg == Segment(tmp_path / "proxy-a-000000000012.open", "proxy-a", 12, OPEN)


def test_list_orders_by_sequence_then_writer(tmp_path: Path) -> None:
    for writer, seq, state in [("w1", 2, SEALED), ("w0", 10, OPEN), ("w0", 2, SEALED), ("w0", 9, SEALED)]:
        touch(tmp_path, segment_name(writer, seq, state))
    touch(tmp_path, "w0-3.seg")  # an unpadded sequence still sorts as a number
    got = [(s.writer, s.seq, s.state) for s in list_segments(tmp_path)]
    assert got == [("w0", 2, SEALED), ("w1", 2, SEALED), ("w0", 3, SEALED), ("w0", 9, SEALED), ("w0", 10, OPEN)]


def test_list_ignores_other_files(tmp_path: Path) -> None:
    for name in [
        "recorder.checkpoint",
        "recorder.tmp",
        "w0-000000000001.seg.tmp",
        "noseq.seg",
        "-1.seg",
        "w0-abc.seg",
        "w0-000000000001",
        "README",
    ]:
        touch(tmp_path, name)
    touch(tmp_path, segment_name("w0", 1, SEALED))
    assert [s.path.name for s in list_segments(tmp_path)] == ["w0-000000000001.seg"]


def test_missing_directory_lists_nothing(tmp_path: Path) -> None:
    assert list_segments(tmp_path / "absent") == []
    assert spool_bytes(tmp_path / "absent") == 0


def test_spool_bytes_counts_segments_only(tmp_path: Path) -> None:
    touch(tmp_path, segment_name("w0", 1, SEALED), 100)
    touch(tmp_path, segment_name("w0", 2, OPEN), 23)
    touch(tmp_path, "recorder.checkpoint", 1000)
    assert spool_bytes(tmp_path) == 123
