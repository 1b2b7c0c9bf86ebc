"""Numbered, idempotent migrations, recorded in ``schema_migrations``.

Files ``NNNN_name.sql`` ship in ``toolwatch.schemas/migrations``. A migration applies when its number is
not recorded yet; its statements use IF NOT EXISTS, so one interrupted half-way runs again safely.
TTLs come from settings and are re-applied (without rewriting old parts) when they change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from clickhouse_connect.driver.client import Client

from toolwatch.schemas.vocab import SQL_PARAMETERS

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
TTL_TABLES = {
    "llm_calls": "ttl_days",
    "tool_calls": "ttl_days",
    "tool_results": "ttl_days",
    "bodies": "body_ttl_days",
}


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        text = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return [s.strip() for s in text.split(";") if s.strip()]


def available() -> list[Migration]:
    found = []
    for entry in resources.files("toolwatch.schemas").joinpath("migrations").iterdir():
        m = _FILE.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    found.sort(key=lambda mig: mig.version)
    return found


def applied(client: Client) -> set[int]:
    client.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String,"
        " applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = ReplacingMergeTree ORDER BY version"
    )
    return {int(r[0]) for r in client.query("SELECT version FROM schema_migrations").result_rows}


def migrate(client: Client, ttl_days: int = 90, body_ttl_days: int = 7, upto: int | None = None) -> list[Migration]:
    """Apply what is missing (up to ``upto``, default all); return the migrations applied now."""
    done = applied(client)
    ran = []
    for mig in available():
        if mig.version in done or (upto is not None and mig.version > upto):
            continue
        for stmt in mig.statements():
            # the closed vocabularies a backfill compares against are bound, never spelled in SQL
            client.command(stmt, parameters=SQL_PARAMETERS if "{" in stmt else None)
        client.insert("schema_migrations", [[mig.version, mig.name]], column_names=["version", "name"])
        ran.append(mig)
    apply_ttls(client, {"ttl_days": ttl_days, "body_ttl_days": body_ttl_days})
    return ran


def apply_ttls(client: Client, days: dict[str, int]) -> None:
    for table, key in TTL_TABLES.items():
        n = int(days[key])  # validated integers from settings; DDL cannot take bound parameters
        want = f"toDateTime(ts) + toIntervalDay({n})"
        current = client.query(
            "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
            parameters={"t": table},
        ).result_rows
        if current and want not in current[0][0]:
            client.command(
                f"ALTER TABLE {table} MODIFY TTL toDateTime(ts) + INTERVAL {n} DAY",
                settings={"materialize_ttl_after_modify": 0},
            )
