"""Alerts on the read side: listing, ``check`` and ``compare``, and the writes anyone may make through the
store (acknowledge, silence). The evaluator (``alerts/evaluate.py``) re-reads open alerts and silences at
every evaluation, so these take effect wherever they are written: by the read API or by the CLI on the
store directly.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from clickhouse_connect.driver.client import Client

from toolwatch.analyzers import runner
from toolwatch.analyzers.params import DEFAULT_ABANDON_S, DEFAULT_CASCADE_RUN
from toolwatch.analyzers.stats import difference_interval, fisher_greater, wilson
from toolwatch.schemas.alerts import COLUMNS, METRICS, SILENCE_COLUMNS, Alert, Silence, from_row
from toolwatch.schemas.durations import seconds
from toolwatch.schemas.vocab import ALERT_KINDS, INDICATORS, Indicator

REGRESSIONS = ("switch_regression", "drift")  # what `check` gates on; threshold rules are not regressions
ALL_SESSIONS: tuple[Indicator, ...] = ("malformed", "tool_error")


FAR = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


class NoSuchAlert(LookupError):
    pass


def _alerts(c: Client, **params: Any) -> list[Alert]:
    q = c.query(runner.composed("alerts"), parameters=params)
    return [from_row(q.column_names, row) for row in q.result_rows]


def active_silences(c: Client, now: dt.datetime) -> list[Silence]:
    q = c.query(
        f"SELECT {', '.join(SILENCE_COLUMNS)} FROM silences FINAL WHERE until > {{now:DateTime64(3)}}",
        parameters={"now": now},
    )
    out = []
    for row in q.result_rows:
        data = dict(zip(SILENCE_COLUMNS, row, strict=True))
        for name in ("until", "created_at"):
            value = data[name]
            data[name] = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
        out.append(Silence(**data))
    return out


def _silenced_until(alert: Alert, silences: list[Silence], now: dt.datetime) -> dt.datetime | None:
    ends = [s.until for s in silences if s.matches(alert, now)]
    return max(ends) if ends else None


def list_alerts(
    c: Client,
    open_only: bool,
    agent: str = "",
    kind: str = "",
    since: dt.datetime | None = None,
    last: int = 100,
    until: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    found = _alerts(
        c,
        open_only=int(open_only),
        agent=agent,
        kind=kind,
        since=since or now - dt.timedelta(days=7),
        until=until or FAR,
        last=last,
    )
    silences = active_silences(c, now)
    return [a.public(_silenced_until(a, silences, now)) for a in found]


def latest(c: Client, aid: str) -> Alert:
    q = c.query(f"SELECT {', '.join(COLUMNS)} FROM alerts FINAL WHERE id = {{id:String}}", parameters={"id": aid})
    if not q.result_rows:
        raise NoSuchAlert(f"no alert {aid!r}")
    return from_row(COLUMNS, q.result_rows[0])


def acknowledge(c: Client, aid: str, by: str) -> dict[str, Any]:
    """A new version of the alert, acknowledged (it stays open, and is still resolved by the evaluator)."""
    current = latest(c, aid)
    now = dt.datetime.now(dt.UTC)
    acked = current.model_copy(
        update={"version": current.version + 1, "acknowledged_at": now, "acknowledged_by": by or "someone"}
    )
    c.insert("alerts", [acked.row()], column_names=list(COLUMNS))
    return acked.public(_silenced_until(acked, active_silences(c, now), now))


def silence(
    c: Client, *, alert: str = "", agent: str = "", kind: str = "", seconds: float, by: str = "", comment: str = ""
) -> dict[str, Any]:
    """Hold back notifications for one alert, or for an agent's alerts (of one kind), for ``seconds``."""
    if bool(alert) == bool(agent):
        raise ValueError("silence either one alert (its id) or an agent")
    if kind and kind not in ALERT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(ALERT_KINDS)}")
    if not 0 < seconds <= 90 * 86400:
        raise ValueError("a silence lasts between 1 second and 90 days")
    if alert:
        latest(c, alert)
    now = dt.datetime.now(dt.UTC)
    entry = Silence(
        id=uuid.uuid4().hex[:16],
        alert_id=alert,
        agent=agent,
        kind=kind,
        until=now + dt.timedelta(seconds=seconds),
        created_at=now,
        created_by=by,
        comment=comment,
    )
    c.insert("silences", [entry.row(1)], column_names=[*SILENCE_COLUMNS, "version"])
    return entry.public()


def unsilence(c: Client, sid: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    found = [s for s in active_silences(c, now) if s.id == sid]
    if not found:
        raise NoSuchAlert(f"no active silence {sid!r}")
    ended = Silence(**{**found[0].__dict__, "until": now})
    c.insert("silences", [ended.row(2)], column_names=[*SILENCE_COLUMNS, "version"])
    return ended.public()


def silences(c: Client) -> list[dict[str, Any]]:
    return [s.public() for s in active_silences(c, dt.datetime.now(dt.UTC))]


def check(c: Client, agent: str, since: dt.datetime) -> dict[str, Any]:
    """The regression alerts (switch and drift) open now for the agent ('' = any) that opened since ``since``."""
    now = dt.datetime.now(dt.UTC)
    found = [
        a
        for a in _alerts(c, open_only=1, agent=agent, kind="", since=since, until=FAR, last=1000)
        if a.kind in REGRESSIONS and a.opened_at >= since
    ]
    silences_now = active_silences(c, now)
    return {
        "agent": agent or None,
        "since": since.isoformat(),
        "open": len(found),
        "alerts": [a.public(_silenced_until(a, silences_now, now)) for a in found],
    }


def session_facts(c: Client, since: dt.datetime, until: dt.datetime) -> list[dict[str, Any]]:
    """The per-session indicators of every agent's sessions with a step in the window (session_facts.sql),
    with the default abandon timeout and cascade run: what alerts compare."""
    return runner.typed(
        c,
        "session_facts",
        since=since,
        until=until,
        agent="",
        abandon_s=DEFAULT_ABANDON_S,
        cascade_run=DEFAULT_CASCADE_RUN,
    )


def compare(c: Client, agent: str, before: str, after: str, since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
    """Two models on one agent side by side over the window: each per-session indicator with its 95 %
    interval, the difference with its interval, the one-sided p-value that ``after`` is worse, and latency."""
    rows = session_facts(c, since, until)
    sides = {before: _Tally(), after: _Tally()}
    for row in rows:
        if row["agent"] == agent and row["model"] in sides:
            sides[row["model"]].add(row)
    metrics = []
    for indicator in INDICATORS:
        xb, nb = sides[before].count(indicator)
        xa, na = sides[after].count(indicator)
        metrics.append(
            {
                "metric": METRICS[indicator],
                "before": xb / nb if nb else None,
                "after": xa / na if na else None,
                "n_before": nb,
                "n_after": na,
                "before_interval": list(wilson(xb, nb)) if nb else None,
                "after_interval": list(wilson(xa, na)) if na else None,
                "difference_interval": list(difference_interval(xa, na, xb, nb)) if na and nb else None,
                "p_after_worse": fisher_greater(xa, na, xb, nb) if na and nb else None,
            }
        )
    latency = {
        r["model"]: {k: v for k, v in r.items() if k != "model"}
        for r in runner.run(c, "latency", since=since, until=until, agent=agent, models=[before, after])
    }
    return {
        "agent": agent,
        "before": before,
        "after": after,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "sessions": {before: sides[before].n, after: sides[after].n},
        "metrics": metrics,
        "latency": {m: latency.get(m) for m in (before, after)},
    }


def alert_write(action: str, q: dict[str, str]) -> Callable[[Client], dict[str, Any]]:
    """One of the writes, from query-string style arguments (the read API and the CLI share this)."""
    if action == "ack":
        aid, by = q.get("id", ""), q.get("by", "")
        if not aid:
            raise ValueError("ack needs the alert's id")
        return lambda c: acknowledge(c, aid, by)
    if action == "silence":
        seconds = seconds_of(q.get("for", ""))
        return lambda c: silence(
            c,
            alert=q.get("id", ""),
            agent=q.get("agent", ""),
            kind=q.get("kind", ""),
            seconds=seconds,
            by=q.get("by", ""),
            comment=q.get("comment", ""),
        )
    if action == "unsilence":
        sid = q.get("id", "")
        if not sid:
            raise ValueError("unsilence needs the silence's id")
        return lambda c: unsilence(c, sid)
    raise ValueError(f"unknown alert action {action!r}")


def seconds_of(text: str) -> float:
    if not text:
        raise ValueError("a silence needs a duration (for=2h)")
    return seconds(text)


class _Tally:
    def __init__(self) -> None:
        self.n = 0
        self.closed = 0
        self.hits: dict[Indicator, int] = dict.fromkeys(INDICATORS, 0)

    def add(self, row: dict[str, Any]) -> None:
        self.n += 1
        closed = row["outcome"] != "open"
        self.closed += closed
        self.hits["malformed"] += bool(row["malformed"])
        self.hits["tool_error"] += bool(row["tool_error"])
        self.hits["cascade"] += bool(row["cascade"])
        self.hits["failed"] += closed and row["outcome"] in ("failed", "abandoned")

    def count(self, indicator: Indicator) -> tuple[int, int]:
        return self.hits[indicator], self.n if indicator in ALL_SESSIONS else self.closed
