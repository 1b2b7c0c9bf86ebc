"""The command line: argument errors, and reading a stopped store directly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import run_cli
from toolwatch.cli import main


def test_bad_last_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["calls", "--last", "0", "--store", f"chdb://{tmp_path}/s"]) == 2
    assert "--last must be between 1 and 10000" in capsys.readouterr().err


def test_bad_config_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "toolwatch.toml"
    cfg.write_text('port = "eighty"\n')
    assert main(["calls", "--config", str(cfg), "--server", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err and "port" in err


def test_unreachable_server_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calls", "--server", "http://127.0.0.1:9"]) == 2
    assert "cannot reach the toolwatch server at http://127.0.0.1:9" in capsys.readouterr().err


async def test_migrate_and_calls_on_a_stopped_store(tmp_path: Path) -> None:
    store = f"chdb://{tmp_path / 'store'}"
    rc, out, err = await run_cli("migrate", "--store", store)
    assert rc == 0, err
    from toolwatch.store.migrate import available

    migrations = available()
    assert f"applied {len(migrations)} migration(s)" in out
    assert all(f"{m.version:04d} {m.name}" in out for m in migrations)
    rc, out, err = await run_cli("migrate", "--store", store)
    assert rc == 0 and "applied 0 migration(s)" in out
    rc, out, err = await run_cli("calls", "--json", "--store", store)
    assert rc == 0, err
    assert json.loads(out) == []


async def test_deadletter_list_and_replay(tmp_path: Path) -> None:
    import uuid
    from datetime import UTC, datetime

    from toolwatch.recorder.loop import Recorder
    from toolwatch.schemas.exchange import Exchange
    from toolwatch.spool.deadletter import DeadLetters
    from toolwatch.spool.reader import SpoolReader
    from toolwatch.spool.writer import SpoolWriter
    from toolwatch.store.sink import MemorySink

    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, cap_bytes=1 << 30, segment_bytes=1 << 20, segment_max_age=3600.0)
    await writer.start()
    bad = Exchange(
        id=uuid.UUID(int=7), started_at=datetime(2026, 1, 1, tzinfo=UTC), upstream="openai", api="openai",
        method="POST", path="/v1/chat/completions", status=200, session_id="caf\udce9",
    )  # fmt: skip
    assert writer.append(bad, b"{}", b"{}") is False  # could not be encoded: set aside
    await writer.close()
    DeadLetters(spool).put("reader", "damaged spool frame: test", [b"garbage"])
    args = ("--store", f"chdb://{tmp_path}/store", "--spool", str(spool))
    rc, out, err = await run_cli("deadletter", "list", "--json", *args, cwd=tmp_path)
    assert rc == 0, err
    listed = json.loads(out)
    assert sorted(d["stage"] for d in listed) == ["proxy", "reader"]
    rc, out, err = await run_cli("deadletter", "replay", *args, cwd=tmp_path)
    assert rc == 0, err
    assert "put 1 frame(s) back into the spool; 1 dead letter(s) cannot be replayed" in out
    sink = MemorySink()
    recorder = Recorder(SpoolReader(spool), sink, batch_rows=1)
    recorder.step()
    [call] = sink.all().llm_calls
    assert call.call_id == bad.id and call.session_id == "caf\ufffd"
    rc, out, _ = await run_cli("deadletter", "list", *args, cwd=tmp_path)
    assert "damaged spool frame: test" in out and out.count("\n") == 1
