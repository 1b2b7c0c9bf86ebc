"""The read API's answers, one function per view: the analyzers' rows, shaped for whoever asks (the CLI's
``--json``, the dashboard, the JSON twin of every dashboard page). Both the recorder's read API and the
CLI reading a store directly go through ``view``, so they always give the same figures.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client

from toolwatch.analyzers import alerting, runner
from toolwatch.analyzers.cost import PriceTable, add_costs, price_table

TIMESERIES_FIELDS = (
    "llm_calls",
    "tool_calls",
    "malformed",
    "tool_results",
    "tool_errors",
    "latency_p50_ms",
    "latency_p95_ms",
    "sessions_closed",
    "sessions_successful",
    "sessions_cascading",
)


# the fields of the tuples the SQL returns, named once here (JSON output always has named fields)
STEP_TOOL_CALL = (
    "call_index",
    "tool_call_id",
    "name",
    "raw_arguments",
    "malformed_kind",
    "outcome",
    "error_rule",
    "result_head",
)
CALL_TOOL_CALL = (
    "call_index",
    "tool_call_id",
    "name",
    "raw_arguments",
    "arguments",
    "malformed_kind",
    "malformed_detail",
)
CALL_RESULT = ("tool_call_id", "content", "content_bytes", "truncated", "is_error", "error_rule")
RECENT_TOOL_CALL = (
    "call_index",
    "tool_call_id",
    "name",
    "raw_arguments",
    "arguments",
    "malformed_kind",
    "outcome",
    "error_rule",
)


class NotFound(LookupError):
    pass


ALERT_VIEWS: dict[str, Callable[..., Any]] = {
    "alerts": alerting.list_alerts,
    "check": alerting.check,
    "compare": alerting.compare,
    "silences": alerting.silences,
}


@dataclass(frozen=True)
class Context:
    prices: PriceTable = field(default_factory=price_table)


def view(client: Client, name: str, params: dict[str, Any], ctx: Context) -> Any:
    if name in ALERT_VIEWS:
        return ALERT_VIEWS[name](client, **params)
    if name == "prices":
        return ctx.prices.describe()
    if name == "report":
        return add_costs(runner.run(client, "report", **params), ctx.prices)
    if name == "timeseries":
        return timeseries(client, params)
    if name == "call":
        rows = runner.run(client, "call", **params)
        if not rows:
            raise NotFound(f"no call {params['call_id']}")
        row = rows[0]
        row["tool_calls"] = [dict(zip(CALL_TOOL_CALL, t, strict=True)) for t in row["tool_calls"]]
        row["tool_results"] = [dict(zip(CALL_RESULT, r, strict=True)) for r in row["tool_results"]]
        return row
    if name == "session":
        params = narrow_session(client, params)
    rows = runner.run(client, name, **params)
    if name == "recent_calls":
        return [recent_call(row) for row in rows]
    if name == "session":
        for step in rows:
            step["tool_calls"] = [dict(zip(STEP_TOOL_CALL, t, strict=True)) for t in step["tool_calls"] or []]
    return rows


def narrow_session(client: Client, params: dict[str, Any]) -> dict[str, Any]:
    """A session's timeline reads only around its stored row: from its first activity, less the idle timeout
    (a failed first turn retried comes before it), to its last activity plus that timeout (calls the recorder
    could not place). Cutting ``until`` there decides open or abandoned as the whole window does: idle for
    longer than the timeout either way. Without a row (a session only the SQL linker finds), the window."""
    q = client.query(
        "SELECT count(), min(first_ts), max(last_ts) FROM sessions FINAL"
        " WHERE skey IN ({session:String}, concat('h:', {session:String})) AND is_deleted = 0",
        parameters={"session": params["session"]},
    )
    found, first, last = q.result_rows[0]
    if not found:
        return params
    margin = dt.timedelta(seconds=params["abandon_s"], milliseconds=1)
    since, until = first.replace(tzinfo=dt.UTC) - margin, last.replace(tzinfo=dt.UTC) + margin
    return {**params, "since": max(params["since"], since), "until": min(params["until"], until)}


def recent_call(row: dict[str, Any]) -> dict[str, Any]:
    """A call as ``calls`` shows it: missing values are null, never "", and each tool call is an object whose
    ``arguments`` are the parsed JSON object (null when the raw text was not one)."""
    tool_calls = []
    for values in row["tool_calls"] or []:
        tc = dict(zip(RECENT_TOOL_CALL, values, strict=True))
        tc["arguments"] = None if tc["arguments"] is None else json.loads(tc["arguments"])
        tc["malformed_kind"] = tc["malformed_kind"] or None
        tc["error_rule"] = tc["error_rule"] or None
        tool_calls.append(tc)
    return {**{k: None if v == "" else v for k, v in row.items()}, "tool_calls": tool_calls}


def _epoch(value: str) -> int:
    return int(dt.datetime.fromisoformat(value).timestamp())


def timeseries(client: Client, params: dict[str, Any]) -> dict[str, Any]:
    """Columnar arrays per model on one shared time axis (what a chart library wants), derived rates
    included, with the model switches to mark on that axis."""
    step = params["step_s"]
    start = int(params["since"].timestamp()) // step * step
    axis = list(range(start, int(params["until"].timestamp()) + 1, step))
    where = {t: i for i, t in enumerate(axis)}
    models: dict[str, dict[str, Any]] = {}
    for row in runner.run(client, "timeseries", **params):
        i = where.get(_epoch(row["t"]))
        if i is None:
            continue
        series = models.setdefault(row["model"], _empty(len(axis)))
        for name in TIMESERIES_FIELDS:
            series[name][i] = row[name]
        for kind, n in (row["malformed_by_kind"] or {}).items():
            series["malformed_by_kind"].setdefault(kind, [None] * len(axis))[i] = n
    for series in models.values():
        series.update(_rates(series))
    span = {"since": params["since"], "until": params["until"]}
    switches = runner.run(client, "switch_events", agent=params.get("agent", ""), **span)
    alerts = alerting.list_alerts(
        client, open_only=False, agent=params.get("agent", ""), since=params["since"], until=params["until"], last=1000
    )
    return {"step_s": step, "t": axis, "models": models, "switches": switches, "alerts": alerts}


def _empty(n: int) -> dict[str, Any]:
    series: dict[str, Any] = {name: [None] * n for name in TIMESERIES_FIELDS}
    series["malformed_by_kind"] = {}
    return series


def _ratio(num: list[Any], den: list[Any]) -> list[float | None]:
    return [None if not d else (n or 0) / d for n, d in zip(num, den, strict=True)]


def _rates(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "malformed_rate": _ratio(s["malformed"], s["tool_calls"]),
        "malformed_rate_by_kind": {k: _ratio(v, s["tool_calls"]) for k, v in s["malformed_by_kind"].items()},
        "tool_error_rate": _ratio(s["tool_errors"], s["tool_results"]),
        "session_success_rate": _ratio(s["sessions_successful"], s["sessions_closed"]),
        "cascade_rate": _ratio(s["sessions_cascading"], s["sessions_closed"]),
    }
