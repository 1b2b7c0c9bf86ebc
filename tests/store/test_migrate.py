"""Numbered migrations: applied once, recorded, safe to re-run; TTLs follow the settings."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from toolwatch.schemas.records import Body, LlmCall, ToolCall, ToolResult
from toolwatch.store.client import open_client
from toolwatch.store.migrate import TTL_TABLES, Migration, applied, apply_ttls, available, migrate

TABLES = {"llm_calls": LlmCall, "tool_calls": ToolCall, "tool_results": ToolResult, "bodies": Body}


@pytest.fixture
def client(store_path: Path) -> Iterator[Client]:
    c = open_client(f"chdb://{store_path}", f"t_{uuid.uuid4().hex[:12]}")
    try:
        yield c
    finally:
        c.close()


def ttl_days(client: Client, table: str) -> int:
    [(query,)] = client.query(
        "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
        parameters={"t": table},
    ).result_rows
    m = re.search(r"TTL toDateTime\(ts\) \+ toIntervalDay\((\d+)\)", query)
    assert m, query
    return int(m.group(1))


def recorded(client: Client) -> list[tuple[int, str]]:
    rows = client.query("SELECT version, name FROM schema_migrations ORDER BY version").result_rows
    return [(int(v), n) for v, n in rows]


def test_shipped_migrations_are_numbered_from_one_without_gaps() -> None:
    migs = available()
    assert migs, "no migration files found in toolwatch.schemas/migrations"
    assert [m.version for m in migs] == list(range(1, len(migs) + 1))
    assert migs[0].name == "core_tables"
    assert all(m.statements() for m in migs)


def test_statements_drop_comment_lines_and_split_on_semicolons() -> None:
    mig = Migration(9, "x", "-- a comment; not a statement\nCREATE TABLE a (x UInt8);\n\n  -- another\nSELECT 1;\n")
    assert mig.statements() == ["CREATE TABLE a (x UInt8)", "SELECT 1"]


def test_fresh_database_gets_every_migration_once(client: Client) -> None:
    ran = migrate(client)
    assert [m.version for m in ran] == [m.version for m in available()]
    assert recorded(client) == [(m.version, m.name) for m in available()]
    assert applied(client) == {m.version for m in available()}
    tables = {r[0] for r in client.query("SHOW TABLES").result_rows}
    assert set(TABLES) | {"schema_migrations"} <= tables


def test_second_run_applies_nothing(client: Client) -> None:
    migrate(client)
    assert migrate(client) == []
    assert migrate(client) == []
    rows = client.query("SELECT version, count() FROM schema_migrations GROUP BY version").result_rows
    assert sorted(rows) == [(m.version, 1) for m in available()]


def test_a_migration_interrupted_half_way_runs_again(client: Client) -> None:
    applied(client)  # the bookkeeping table exists, nothing recorded
    first = available()[0]
    client.command(first.statements()[0])  # one table created, then the process died
    ran = migrate(client)
    assert first in ran
    assert recorded(client)[0] == (first.version, first.name)


def test_every_record_field_is_a_table_column(client: Client) -> None:
    # the writer inserts with the record's field names as column names
    migrate(client)
    for table, model in TABLES.items():
        columns = {r[0] for r in client.query(f"DESCRIBE TABLE {table}").result_rows}
        missing = set(model.model_fields) - columns
        assert not missing, f"{table} lacks {missing}"


def test_default_ttls(client: Client) -> None:
    migrate(client)
    assert {t: ttl_days(client, t) for t in TTL_TABLES} == {
        "llm_calls": 90,
        "tool_calls": 90,
        "tool_results": 90,
        "bodies": 7,
    }


def test_ttls_follow_the_settings_on_every_start(client: Client) -> None:
    migrate(client, ttl_days=30, body_ttl_days=2)
    assert {t: ttl_days(client, t) for t in TTL_TABLES} == {
        "llm_calls": 30,
        "tool_calls": 30,
        "tool_results": 30,
        "bodies": 2,
    }
    assert migrate(client, ttl_days=9, body_ttl_days=70) == []  # nothing to migrate, TTLs still change
    assert {t: ttl_days(client, t) for t in TTL_TABLES} == {
        "llm_calls": 9,
        "tool_calls": 9,
        "tool_results": 9,
        "bodies": 70,
    }


def test_apply_ttls_alone(client: Client) -> None:
    migrate(client)
    apply_ttls(client, {"ttl_days": 365, "body_ttl_days": 1})
    assert ttl_days(client, "tool_results") == 365
    assert ttl_days(client, "bodies") == 1
    apply_ttls(client, {"ttl_days": 365, "body_ttl_days": 1})  # unchanged: no ALTER, no error
    assert ttl_days(client, "llm_calls") == 365


def test_a_newer_recorded_version_does_not_disturb_the_known_ones(client: Client) -> None:
    migrate(client)
    client.command("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
    assert migrate(client) == []
    assert (999, "future") in recorded(client)
