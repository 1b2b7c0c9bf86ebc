"""The golden test: a fixed set of spool frames gives exactly the same records and sessions, always.

``tests/fixtures/golden/frames.twf`` holds 35 frames recorded from the fake upstream (every provider,
streamed and not, in-text calls, resent results, malformed calls, a retried failure, a gzip body, sessions
with and without headers; see ``make_frames.py``). They are replayed through the recorder into an
in-memory sink and every row, ids included, must equal the snapshot in ``records.json``. Then they are
stored and the session analyzers must give the snapshot in ``sessions.json``, both with the recorder's
memory warm (one recorder for all frames) and with it cleared before every frame (the SQL fallback
linker), which proves the two linkers agree.

Set ``TOOLWATCH_GOLDEN_UPDATE=1`` to rewrite the snapshots after a deliberate change of behaviour.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.harness import make_settings
from toolwatch.analyzers import runner
from toolwatch.analyzers.params import analyzer_params
from toolwatch.recorder.build import BuildOptions
from toolwatch.recorder.loop import Recorder
from toolwatch.spool.reader import SpoolReader
from toolwatch.store.handle import StoreHandle
from toolwatch.store.writer import ClickHouseSink

HERE = Path(__file__).resolve().parent.parent / "fixtures" / "golden"
FRAMES = HERE / "frames.twf"
UPDATE = os.environ.get("TOOLWATCH_GOLDEN_UPDATE") == "1"
TABLES = ("llm_calls", "tool_calls", "tool_results", "bodies")
MAGIC = b"TWF1"


def split_frames(data: bytes) -> list[bytes]:
    """The frames of the fixture as separate byte strings (header: magic, crc, three u32 lengths)."""
    out, offset = [], 0
    while offset < len(data):
        assert data[offset : offset + 4] == MAGIC
        lengths = [int.from_bytes(data[offset + 8 + 4 * i : offset + 12 + 4 * i], "little") for i in range(3)]
        size = 20 + sum(lengths)
        out.append(data[offset : offset + size])
        offset += size
    return out


class ListSink:
    """Keeps every row written, per table (duck-typed: a sink has ``write`` and ``shutdown``)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[Any]] = {t: [] for t in TABLES}

    def write(self, batch: Any) -> None:
        for table in TABLES:
            self.rows[table].extend(getattr(batch, table))

    def shutdown(self) -> None:
        pass


def plain(value: Any) -> Any:
    """A record as JSON-ready data; bytes by digest, so the snapshot stays small."""
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return {
            "len": len(value),
            "sha256": hashlib.sha256(value).hexdigest(),
            "head": base64.b64encode(value[:24]).decode(),
        }
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return value


def spool_with(directory: Path, frames: list[bytes]) -> Path:
    directory.mkdir(parents=True)
    (directory / "w0-000000000001.seg").write_bytes(b"".join(frames))
    return directory


def replay(spool: Path, sink: Any) -> Recorder:
    recorder = Recorder(SpoolReader(spool), sink, options=BuildOptions(), batch_rows=100_000, batch_interval=3600)
    while recorder.step():
        pass
    recorder.flush()
    return recorder


def check(name: str, got: Any) -> None:
    path = HERE / name
    text = json.dumps(got, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with TOOLWATCH_GOLDEN_UPDATE=1 once"
    assert json.loads(text) == json.loads(path.read_text())


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return split_frames(FRAMES.read_bytes())


def test_frames_fixture_is_whole(frames: list[bytes]) -> None:
    assert len(frames) == 35


def test_records_equal_the_snapshot(tmp_path: Path, frames: list[bytes]) -> None:
    sink = ListSink()
    recorder = replay(spool_with(tmp_path / "spool", frames), sink)
    assert recorder.stats.frames_read == len(frames)
    assert recorder.stats.build_errors == 0
    got = {table: [plain(r) for r in rows] for table, rows in sink.rows.items()}
    assert len(got["llm_calls"]) == len(frames)
    check("records.json", got)


def sessions_of(
    store_path: Path, tmp_path: Path, frames: list[bytes], warm: bool, timelines: bool = True
) -> dict[str, Any]:
    settings = make_settings(store_path, tmp_path / "unused")
    store = StoreHandle(settings)
    try:
        sink = ClickHouseSink(store)
        if warm:
            replay(spool_with(tmp_path / "warm", frames), sink)
        else:  # memory cleared before every frame: a new recorder each time
            for i, frame in enumerate(frames):
                replay(spool_with(tmp_path / f"cold{i}", [frame]), sink)
        ts = [r[0] for r in store.run(lambda c: c.query("SELECT ts FROM llm_calls").result_rows)]
        window = {
            "since": (min(ts) - dt.timedelta(hours=1)).isoformat(),
            "until": (max(ts) + dt.timedelta(minutes=1)).isoformat(),
        }

        def run(name: str, **extra: Any) -> Any:
            params = analyzer_params(name, {**window, **extra})
            return store.run(lambda c: runner.run(c, name, **params))

        sessions = run("sessions", last="1000")
        # how many sessions were recomputed rather than read from their stored row depends on arrival order (a
        # call that came before the one it continues is placed by the SQL linker); every figure must not
        report = [{k: v for k, v in row.items() if k != "sessions_recomputed"} for row in run("report")]
        got = {"sessions": sessions, "report": report}
        if timelines:
            got["timelines"] = {s["session"]: run("session", session=s["session"]) for s in sessions}
        return got
    finally:
        store.close()


def test_sessions_equal_the_snapshot_warm_and_cold(store_path: Path, tmp_path: Path, frames: list[bytes]) -> None:
    warm = sessions_of(store_path, tmp_path, frames, warm=True)
    cold = sessions_of(store_path, tmp_path, frames, warm=False)
    assert len(warm["sessions"]) >= 12
    assert cold == warm
    check("sessions.json", warm)
