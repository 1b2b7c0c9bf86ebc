"""Runs the analyzer SQL files in this package. Parameters are bound by clickhouse-connect, never formatted.

Results come back as JSON-ready rows: UUIDs and datetimes become strings, tuples become lists.
"""

from __future__ import annotations

import datetime as dt
import uuid
from functools import cache
from importlib import resources
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from toolwatch.schemas.vocab import SQL_PARAMETERS


@cache
def sql(name: str) -> str:
    return resources.files("toolwatch.analyzers").joinpath(f"{name}.sql").read_text()


# analyzers that read other analyzers as common table expressions, in dependency order
CTES: dict[str, tuple[str, ...]] = {
    "report": ("result_counts", "steps", "session_rows"),
    "sessions": ("result_counts", "steps", "session_rows"),
    "session": ("result_counts", "steps", "session_rows", "tool_outcomes"),
    "timeseries": ("result_counts", "steps", "session_rows"),
    "session_facts": ("result_counts", "steps", "session_rows"),
    "tools": ("tool_outcomes",),
}


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--")).strip()


@cache
def composed(name: str, materialized: bool = False) -> str:
    """The analyzer's SQL with the analyzers it builds on prepended as named CTEs.

    ``materialized``: each CTE is computed once and shared by every reference (ClickHouse's
    ``AS MATERIALIZED``); otherwise ClickHouse inlines a CTE wherever it is referenced."""
    body = _strip_comments(sql(name))
    kind = "AS MATERIALIZED" if materialized else "AS"
    ctes = [f"{cte} {kind} (\n{_strip_comments(sql(cte))}\n)" for cte in CTES.get(name, ())]
    if not ctes:
        return body
    if body[:4].upper() == "WITH":
        return "WITH " + ",\n".join(ctes) + ",\n" + body[4:].lstrip()
    return "WITH " + ",\n".join(ctes) + "\n" + body


_MATERIALIZE = {"enable_materialized_cte": 1}
_materialize_ok: bool | None = None  # learned on first use: older servers lack the setting


def run(client: Client, name: str, **params: Any) -> list[dict[str, Any]]:
    """Rows of one analyzer, JSON-ready. The closed vocabularies it compares against are bound too."""
    return [{c: jsonable(v) for c, v in row.items()} for row in typed(client, name, **params)]


def typed(client: Client, name: str, **params: Any) -> list[dict[str, Any]]:
    """Rows of one analyzer with the driver's types (datetimes stay datetimes), for code that computes."""
    global _materialize_ok
    params = {**SQL_PARAMETERS, **params}
    if name in CTES and _materialize_ok is not False:
        try:
            result = client.query(composed(name, True), parameters=params, settings=_MATERIALIZE)
            _materialize_ok = True
        except ClickHouseError as e:
            if _materialize_ok or "materialized_cte" not in str(e).lower() and "MATERIALIZED" not in str(e):
                raise
            _materialize_ok = False
            result = client.query(composed(name), parameters=params)
    else:
        result = client.query(composed(name), parameters=params)
    cols = result.column_names
    return [dict(zip(cols, row, strict=True)) for row in result.result_rows]


def jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, float) and value != value:  # NaN from empty aggregates
        return None
    return value
