"""Opening the store: database names, the embedded engine, and telling "held by another process" apart."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolwatch.schemas.errors import StoreError, StoreLockedError
from toolwatch.store.client import embedded_locked, open_client


def dbname() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a b", "db;DROP TABLE x", "a`b", "ü"])
def test_database_name_must_be_a_plain_identifier(store_path: Path, name: str) -> None:
    with pytest.raises(StoreError, match="not a plain identifier"):
        open_client(f"chdb://{store_path}", name)


def test_server_dsn_database_is_validated_before_connecting() -> None:
    # the database in a server DSN's path wins over the configured one; nothing listens on port 1
    with pytest.raises(StoreError, match="not a plain identifier"):
        open_client("http://127.0.0.1:1/bad-name", "fine")


def test_unreachable_server_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot open the store") as info:
        open_client("http://127.0.0.1:1", "toolwatch", connect_timeout=2)
    assert not isinstance(info.value, StoreLockedError)
    assert "\n" not in str(info.value)


def test_embedded_client_selects_its_database_and_creates_it(store_path: Path) -> None:
    db = dbname()
    client = open_client(f"chdb://{store_path}", db)
    try:
        assert client.query("SELECT currentDatabase()").result_rows == [(db,)]
        names = [r[0] for r in client.query("SELECT name FROM system.databases").result_rows]
        assert db in names
        client.command("CREATE TABLE t (x UInt8) ENGINE = Memory")
        client.insert("t", [[1]], column_names=["x"])
        assert client.query("SELECT x FROM t").result_rows == [(1,)]
    finally:
        client.close()


def test_databases_on_one_path_are_separate(store_path: Path) -> None:
    a_name, b_name = dbname(), dbname()
    a = open_client(f"chdb://{store_path}", a_name)
    b = open_client(f"chdb://{store_path}", b_name)
    try:
        a.command("CREATE TABLE only_a (x UInt8) ENGINE = Memory")
        assert b.query("SELECT count() FROM system.tables WHERE database = currentDatabase()").result_rows == [(0,)]
    finally:
        a.close()
        b.close()


def test_reopening_an_existing_database(store_path: Path) -> None:
    db = dbname()
    first = open_client(f"chdb://{store_path}", db)
    first.command("CREATE TABLE kept (x UInt8) ENGINE = MergeTree ORDER BY x")
    first.insert("kept", [[7]], column_names=["x"])
    first.close()
    second = open_client(f"chdb://{store_path}", db)
    try:
        assert second.query("SELECT x FROM kept").result_rows == [(7,)]
    finally:
        second.close()


# -- the lock held by another process --------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import pathlib, sys, time
    import clickhouse_connect
    client = clickhouse_connect.get_client(dsn="chdb://" + sys.argv[1])
    pathlib.Path(sys.argv[2]).write_text("open")
    time.sleep(60)
    """
)


@pytest.fixture
def held_store(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """An embedded store opened by another process (as a running toolwatch would)."""
    path, ready = tmp_path / "other", tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(ready)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None:
                raise AssertionError(f"holder exited: {proc.stderr.read() if proc.stderr else b''!r}")
            if time.monotonic() > deadline:
                raise AssertionError("holder did not open the store")
            time.sleep(0.02)
        yield path, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        if proc.stderr:
            proc.stderr.close()


def test_embedded_locked_while_another_process_holds_the_path(
    held_store: tuple[Path, subprocess.Popen[bytes]],
) -> None:
    path, proc = held_store
    assert (path / "status").exists()
    assert embedded_locked(str(path)) is True
    proc.kill()
    proc.wait(30)
    assert embedded_locked(str(path)) is False  # the lock goes with the process


def test_opening_a_held_store_raises_store_locked(held_store: tuple[Path, subprocess.Popen[bytes]]) -> None:
    path, _ = held_store
    with pytest.raises(StoreLockedError, match="held by another process") as info:
        open_client(f"chdb://{path}", "toolwatch")
    assert str(path) in str(info.value)


def test_embedded_locked_is_false_without_a_store(tmp_path: Path) -> None:
    assert embedded_locked(str(tmp_path / "never-opened")) is False
    (tmp_path / "idle").mkdir()
    (tmp_path / "idle" / "status").write_text("left by a process that exited\n")
    assert embedded_locked(str(tmp_path / "idle")) is False


def test_store_locked_is_a_store_error() -> None:
    assert issubclass(StoreLockedError, StoreError)
