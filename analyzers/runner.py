"""Runs the analyzer SQL files in this package. Parameters are bound by clickhouse-connect, never formatted.

Results come back as JSON-ready rows: UUIDs and datetimes become strings, tuples become lists.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from toolwatch.schemas.vocab import SQL_PARAMETERS


@cache
def sql(name: str) -> str:
    return resources.files("toolwatch.analyzers").joinpath(f"{name}.sql").read_text()


@dataclass(frozen=True)
class Cte:
    """A common table expression: the analyzer ``file`` (default: ``name``) under ``name``; for call_keys.sql,
    the calls it reads (``scope``, one of SCOPES)."""

    name: str
    file: str = ""
    scope: str = ""


# the /*scope*/ markers of call_keys.sql (the calls it reads): every call in the window, the calls the recorder
# could not place, the calls no usable stored session row holds (what a report recomputes), or one session's.
# They compare llm_calls.placed_hash, a 64-bit hash of the placed key: two keys with one hash could only leave a
# recomputed session's call out (about 1e-7 over a week of 10 million calls) or add another session's calls to
# one session's scope (which its skey filter then drops);
# and of result_counts.sql (/*scope:column*/, the producing calls it counts results for): those call_keys holds
SCOPES = {
    "all": "1",
    "unplaced": "placed_hash = 0",
    "recompute": "placed_hash = 0 OR placed_hash NOT IN (SELECT cityHash64(skey) FROM session_rows_stored)",
    "session": "placed_hash IN (0, cityHash64({session:String}), cityHash64(concat('h:', {session:String})))",
    "keyed": "{column} IN (SELECT call_id FROM call_keys)",
}
# the joins call_keys.sql resolves unlinked calls with: CTEs of their own, so that a composition reading
# call_keys twice (the unplaced calls, then the recomputed ones) computes each join once
JOINS = (Cte("prior_keys"), Cte("response_keys"), Cte("retry_keys"))
# sessions read from the rows kept at ingest where they can be, recomputed from the raw rows where not; results
# counted only for the calls recomputed
STORED = (
    *JOINS,
    Cte("unplaced_calls", "call_keys", "unplaced"),
    Cte("unplaced_keys"),
    Cte("session_rows_stored"),
    Cte("call_keys", scope="recompute"),
    Cte("result_counts", scope="keyed"),
    Cte("steps"),
    Cte("session_rows_computed"),
    Cte("session_rows"),
)
# every session recomputed from the raw rows at query time: the reference the tests compare with
REFERENCE = (
    *JOINS,
    Cte("call_keys", scope="all"),
    Cte("result_counts"),
    Cte("steps"),
    Cte("session_rows", "session_rows_computed"),
)
ONE_SESSION = (
    *JOINS,
    Cte("call_keys", scope="session"),
    Cte("result_counts", scope="keyed"),
    Cte("steps"),
    Cte("session_rows", "session_rows_computed"),
)
# the time series counts the results of every call in the window (window_results), not only of those recomputed
WINDOW_RESULTS = Cte("window_results", "result_counts")

# analyzers that read other analyzers as common table expressions, in dependency order
CTES: dict[str, tuple[Cte, ...]] = {
    "report": STORED,
    "sessions": STORED,
    "session": (*ONE_SESSION, Cte("tool_outcomes")),
    "timeseries": (*STORED, WINDOW_RESULTS),
    "session_facts": STORED,
    "session_sources": STORED,
    "tools": (Cte("tool_outcomes"),),
    "report_reference": REFERENCE,
    "sessions_reference": REFERENCE,
    "session_reference": (*REFERENCE, Cte("tool_outcomes")),
    "timeseries_reference": (*REFERENCE, WINDOW_RESULTS),
}
# analyzers whose body is another's file
BODIES = {"sessions_reference": "sessions", "session_reference": "session", "timeseries_reference": "timeseries"}


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--")).strip()


def _cte_sql(cte: Cte) -> str:
    text = _strip_comments(sql(cte.file or cte.name))
    if cte.scope:
        text = re.sub(
            r"/\*scope(?::(\w+))?\*/1", lambda m: f"({SCOPES[cte.scope].replace('{column}', m.group(1) or '')})", text
        )
    return text


@cache
def composed(name: str, materialized: bool = False) -> str:
    """The analyzer's SQL with the analyzers it builds on prepended as named CTEs.

    ``materialized``: each CTE read more than once is computed once and shared by every reference
    (ClickHouse's ``AS MATERIALIZED``); otherwise ClickHouse inlines a CTE wherever it is referenced."""
    body = _strip_comments(sql(BODIES.get(name, name)))
    texts = [(cte.name, _cte_sql(cte)) for cte in CTES.get(name, ())]
    ctes = []
    for i, (cte, text) in enumerate(texts):
        # a CTE read once is inlined: materializing it only adds planning time
        readers = [t for _, t in texts[i + 1 :]] + [body]
        shared = materialized and sum(len(re.findall(rf"\b(?:FROM|JOIN)\s+{cte}\b", t)) for t in readers) > 1
        ctes.append(f"{cte} {'AS MATERIALIZED' if shared else 'AS'} (\n{text}\n)")
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
