"""The evaluator's facts: the constants of an evaluation and the values its steps pass around.

``Side`` (indicator counts over a set of sessions, and ``counts`` to compare two of them), ``SwitchEvent``
(a row of ``switch_events``), ``Change`` (an alert version written, for notification), ``Pair`` (what a
drift test compares) and ``Writes`` (what one evaluation inserts at its end). ``evaluate.py`` runs the
evaluation, ``baselines.py`` its tests against a baseline.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client

from toolwatch.alerts.method import Counts, Looks
from toolwatch.schemas.alerts import COLUMNS, Alert
from toolwatch.schemas.vocab import INDICATORS, Indicator, SwitchKind

OVERLAP = dt.timedelta(minutes=2)  # re-read this much before the last evaluation: late frames land there
BACKFILL = dt.timedelta(days=1)  # on a first evaluation over an existing store, index this much
REACH_BACK = dt.timedelta(days=1)  # a session's earlier steps are re-read from at most this far back
RESOLVE_AFTER = dt.timedelta(hours=1)  # an agent off the new model this long, on another: rolled back
ACTIVE_FOR = dt.timedelta(days=30)  # a switch older than this is no longer tested
BASELINE_SPANS = tuple(dt.timedelta(hours=h) for h in (1, 6, 24, 24 * 365))  # widening, up to the setting
BASELINE_KEPT = dt.timedelta(hours=1)
FULL_SHARE = 0.95
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_LIMIT = 4_000_000_000
FACT_COLUMNS = (
    "agent",
    "skey",
    "model",
    "requested",
    "ts",
    "last_ts",
    "steps",
    "outcome",
    "malformed",
    "tool_error",
    "cascade",
)
SWITCH_COLUMNS = ("id", "agent", "ts", "old_model", "new_model", "requested", "kind", "share", "n_old", "n_new")
ALL_SESSIONS: tuple[Indicator, ...] = ("malformed", "tool_error")  # counted from a session's first step


@dataclass(frozen=True)
class Side:
    """One side of a comparison: indicator counts over its sessions."""

    n: int = 0
    closed: int = 0
    split_n: int = 0
    hits: tuple[tuple[Indicator, int], ...] = ()
    examples: tuple[tuple[Indicator, tuple[str, ...]], ...] = ()

    @classmethod
    def of(cls, row: dict[str, Any] | None) -> Side:
        if row is None:
            return cls()
        return cls(
            n=int(row["n"]),
            closed=int(row["closed"]),
            split_n=int(row["split_n"]),
            hits=tuple((i, int(row[f"x_{i}"])) for i in INDICATORS),
            examples=tuple((i, tuple(row[f"{i}_examples"])) for i in INDICATORS),
        )

    def plus(self, other: Side) -> Side:
        mine, theirs = dict(self.hits), dict(other.hits)
        return Side(
            n=self.n + other.n,
            closed=self.closed + other.closed,
            split_n=self.split_n + other.split_n,
            hits=tuple((i, mine.get(i, 0) + theirs.get(i, 0)) for i in INDICATORS),
            examples=tuple((i, (self.example(i) + other.example(i))[:5]) for i in INDICATORS),
        )

    def count(self, indicator: Indicator) -> tuple[int, int]:
        """(sessions with the indicator, sessions it is counted over)."""
        return dict(self.hits).get(indicator, 0), self.n if indicator in ALL_SESSIONS else self.closed

    def example(self, indicator: Indicator) -> tuple[str, ...]:
        for name, found in self.examples:
            if name == indicator:
                return found
        return ()


def counts(before: Side, after: Side, indicator: Indicator) -> Counts:
    xb, nb = before.count(indicator)
    xa, na = after.count(indicator)
    return Counts(xb, nb, xa, na)


@dataclass
class SwitchEvent:
    id: str
    agent: str
    ts: dt.datetime
    old_model: str
    new_model: str
    requested: str
    kind: SwitchKind
    share: float = 1.0
    n_old: int = 0
    n_new: int = 0
    version: int = 0

    def row(self) -> list[Any]:
        return [getattr(self, c) for c in SWITCH_COLUMNS] + [self.version]

    def public(self) -> dict[str, Any]:
        out = {c: getattr(self, c) for c in SWITCH_COLUMNS}
        out["ts"] = self.ts.isoformat()
        return out


@dataclass(frozen=True)
class Change:
    """An alert version written by an evaluation; ``notify`` for state changes (opened or resolved)."""

    alert: Alert
    notify: bool
    silenced: bool


@dataclass(frozen=True)
class Pair:
    """What a drift test compares: one agent's model against itself."""

    agent: str
    old_model: str
    new_model: str


@dataclass
class Writes:
    """What one evaluation writes, inserted together at its end."""

    events: dict[str, SwitchEvent]
    looks: dict[tuple[str, str], Looks]
    alerts: list[Alert]

    def __init__(self) -> None:
        self.events, self.looks, self.alerts = {}, {}, []

    def flush(self, c: Client) -> None:
        if self.events:
            c.insert(
                "switch_events",
                [e.row() for e in self.events.values()],
                column_names=[*SWITCH_COLUMNS, "version"],
            )
        if self.looks:
            stamp = dt.datetime.now(dt.UTC)
            c.insert(
                "alert_looks",
                [[t, m, lk.passed, lk.spent, lk.decided, stamp] for (t, m), lk in self.looks.items()],
                column_names=["test", "metric", "looks", "spent", "decided", "updated_at"],
            )
        if self.alerts:
            c.insert("alerts", [a.row() for a in self.alerts], column_names=list(COLUMNS))
