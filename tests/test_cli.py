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
