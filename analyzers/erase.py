"""``toolwatch delete``: remove one user's or one session's calls from every table that holds them, for
data-protection requests.

The calls are found first (by ``user_id``, by the header session id, or, for an inferred session ``k:...``,
through the session analyzer over all time); then their rows go from ``llm_calls``, ``tool_calls``,
``bodies``, ``tool_results`` (the results those calls carried or caused) and ``sessions`` (the session
rows holding them). The per-minute rollups keep
their counts: they hold no text, no id and no user, only per-model totals.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from clickhouse_connect.driver.client import Client

from toolwatch.analyzers import runner
from toolwatch.analyzers.params import analyzer_params

DELETES = {
    "llm_calls": "has({ids:Array(UUID)}, call_id)",
    "tool_calls": "has({ids:Array(UUID)}, call_id)",
    "tool_results": "has({ids:Array(UUID)}, call_id) OR has({ids:Array(UUID)}, producer_call_id)",
    "bodies": "has({ids:Array(UUID)}, call_id)",
    # the session rows kept at ingest that hold them: a session left with other calls has no row, and is
    # recomputed from the raw rows
    "sessions": "hasAny(step_call, {ids:Array(UUID)}) OR hasAny(result_producer, {ids:Array(UUID)})",
}


@dataclass(frozen=True)
class Erased:
    calls: int
    rows: dict[str, int]


def calls_of(client: Client, user: str | None = None, session: str | None = None) -> list[UUID]:
    if user is not None:
        rows = client.query("SELECT DISTINCT call_id FROM llm_calls WHERE user_id = {u:String}", {"u": user})
        return [r[0] for r in rows.result_rows]
    assert session is not None
    header = session.removeprefix("h:")
    rows = client.query("SELECT DISTINCT call_id FROM llm_calls WHERE session_id = {s:String}", {"s": header})
    found = {r[0] for r in rows.result_rows}
    if session.startswith("k:") or not found:  # an inferred session: what the analyzer groups under it
        params = analyzer_params("session", {"session": session, "since": "3650d"})
        params["until"] = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        found |= {UUID(step["call_id"]) for step in runner.run(client, "session", **params)}
    return sorted(found)


def erase(client: Client, user: str | None = None, session: str | None = None) -> Erased:
    if (user is None) == (session is None):
        raise ValueError("give either a user or a session")
    ids = calls_of(client, user, session)
    rows: dict[str, int] = {}
    if not ids:
        return Erased(0, {t: 0 for t in DELETES})
    params: dict[str, Any] = {"ids": ids}
    for table, where in DELETES.items():
        rows[table] = int(client.query(f"SELECT count() FROM {table} WHERE {where}", params).result_rows[0][0])
        client.command(f"DELETE FROM {table} WHERE {where}", params, settings={"mutations_sync": 2})
    return Erased(len(ids), rows)
