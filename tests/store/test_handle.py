"""The recorder's store handle: opened lazily and migrated once, reachability tracked per call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import make_settings
from toolwatch.schemas.errors import StoreError
from toolwatch.store import handle as handle_module
from toolwatch.store.handle import StoreHandle
from toolwatch.store.migrate import available


@pytest.fixture
def handle(store_path: Path, tmp_path: Path) -> Iterator[StoreHandle]:
    h = StoreHandle(make_settings(store_path, tmp_path / "spool"))
    try:
        yield h
    finally:
        h.close()


def test_nothing_is_opened_until_asked(handle: StoreHandle) -> None:
    assert handle.reachable is False
    assert handle._client is None
    assert handle.errors == 0 and handle.last_error is None


def test_client_is_opened_migrated_and_kept(handle: StoreHandle) -> None:
    client = handle.client()
    assert handle.reachable is True
    assert handle.client() is client
    versions = {r[0] for r in client.query("SELECT version FROM schema_migrations").result_rows}
    assert versions == {m.version for m in available()}
    assert client.query("SELECT currentDatabase()").result_rows == [(handle.settings.database,)]


def test_migrations_use_the_configured_ttls(store_path: Path, tmp_path: Path) -> None:
    h = StoreHandle(make_settings(store_path, tmp_path / "spool", ttl_days=12, body_ttl_days=3))
    try:
        query = h.run(
            lambda c: c.query(
                "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = 'bodies'"
            ).result_rows[0][0]
        )
        assert "toIntervalDay(3)" in query
    finally:
        h.close()


def test_run_returns_the_result(handle: StoreHandle) -> None:
    assert handle.run(lambda c: c.query("SELECT 41 + 1").result_rows) == [(42,)]
    assert handle.reachable is True


def test_a_failure_is_noted_and_raised(handle: StoreHandle) -> None:
    handle.client()

    def fail(_c: Any) -> None:
        raise ValueError("  first line\nsecond line")

    with pytest.raises(ValueError, match="first line"):
        handle.run(fail)
    assert handle.reachable is False
    assert handle.errors == 1
    assert handle.last_error == "ValueError: first line"
    handle.run(lambda c: c.query("SELECT 1"))
    assert handle.reachable is True  # the next success clears it
    assert handle.errors == 1


def test_a_refused_statement_is_noted(handle: StoreHandle) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the driver's own error type
        handle.run(lambda c: c.query("SELECT * FROM no_such_table"))
    assert handle.reachable is False and handle.errors == 1
    assert handle.last_error is not None and "no_such_table" in handle.last_error


def test_note_error_with_an_empty_message() -> None:
    h = StoreHandle.__new__(StoreHandle)
    h.errors, h.reachable, h.last_error = 0, True, None
    h.note_error(TimeoutError())
    assert (h.errors, h.reachable, h.last_error) == (1, False, "TimeoutError: ")


def test_unreachable_store_raises_store_error_until_it_can_open(tmp_path: Path) -> None:
    h = StoreHandle(make_settings(tmp_path / "unused", tmp_path / "spool", store="http://127.0.0.1:1"))
    with pytest.raises(StoreError, match="cannot open the store"):
        h.client()
    with pytest.raises(StoreError):
        h.run(lambda c: c.query("SELECT 1"))
    assert h.reachable is False and h.errors == 1
    assert h.last_error is not None and h.last_error.startswith("StoreError: ")
    h.close()  # nothing opened: nothing to close


def test_failed_migrations_close_the_client_and_are_retried(
    handle: StoreHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    real = handle_module.migrate

    def flaky(client: Any, *args: Any) -> Any:
        calls.append(client)
        if len(calls) == 1:
            raise RuntimeError("DDL refused")
        return real(client, *args)

    monkeypatch.setattr(handle_module, "migrate", flaky)
    with pytest.raises(StoreError, match="migrations failed: DDL refused"):
        handle.client()
    assert handle._client is None and handle.reachable is False
    client = handle.client()
    assert len(calls) == 2 and calls[1] is client
    assert handle.reachable is True


def test_close_then_reopen(handle: StoreHandle) -> None:
    first = handle.client()
    handle.close()
    assert handle._client is None
    handle.close()  # twice is fine
    second = handle.client()
    assert second is not first
    assert second.query("SELECT 1").result_rows == [(1,)]
