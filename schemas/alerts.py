"""What an alert is, as stored (one row per version in ``alerts``) and as shown (``toolwatch alerts --json``,
``/_toolwatch/api/alerts``, webhook bodies)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from toolwatch.schemas.vocab import AlertKind, AlertState, Indicator

# The metric each per-session indicator is reported as: a rate over sessions.
METRICS: dict[Indicator, str] = {
    "malformed": "malformed_session_rate",
    "tool_error": "tool_error_session_rate",
    "cascade": "cascade_rate",
    "failed": "session_failure_rate",
}
# Columns of the ``alerts`` table, in order (the model's fields minus the derived ``interval``).
COLUMNS = (
    "id",
    "version",
    "agent",
    "kind",
    "state",
    "old_model",
    "new_model",
    "metric",
    "before",
    "after",
    "interval_low",
    "interval_high",
    "n_before",
    "n_after",
    "method",
    "detail",
    "examples",
    "opened_at",
    "updated_at",
    "resolved_at",
    "acknowledged_at",
    "acknowledged_by",
)


def alert_id(*parts: str) -> str:
    """A stable id from what identifies an alert (so a replay or a restart finds the same alert)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


class Alert(BaseModel):
    """One alert at one version. ``before``/``after`` are the metric's values (for a threshold rule: the
    threshold and the observed rate); ``interval`` is a 95 % interval for after - before (threshold: for
    after); ``n_before``/``n_after`` are the sessions (threshold: the rate's denominator) behind them."""

    model_config = ConfigDict(frozen=True)

    id: str
    version: int
    agent: str
    kind: AlertKind
    state: AlertState
    old_model: str
    new_model: str
    metric: str
    before: float
    after: float
    interval_low: float
    interval_high: float
    n_before: int
    n_after: int
    method: str
    detail: str
    examples: tuple[str, ...] = ()
    opened_at: dt.datetime
    updated_at: dt.datetime
    resolved_at: dt.datetime | None = None
    acknowledged_at: dt.datetime | None = None
    acknowledged_by: str = ""

    def row(self) -> list[Any]:
        data = self.model_dump()
        data["examples"] = list(self.examples)
        return [data[c] for c in COLUMNS]

    def public(self, silenced_until: dt.datetime | None = None) -> dict[str, Any]:
        """The alert object users see: every field, times as ISO-8601 with their zone."""
        out: dict[str, Any] = {}
        for name in ("id", "agent", "kind", "state", "old_model", "new_model", "metric", "before", "after"):
            out[name] = getattr(self, name)
        out["interval"] = [self.interval_low, self.interval_high]
        out.update(n_before=self.n_before, n_after=self.n_after, method=self.method, detail=self.detail)
        for name in ("opened_at", "updated_at", "resolved_at", "acknowledged_at"):
            value = getattr(self, name)
            out[name] = value.astimezone(dt.UTC).isoformat() if value is not None else None
        out["acknowledged_by"] = self.acknowledged_by or None
        out["silenced_until"] = silenced_until.astimezone(dt.UTC).isoformat() if silenced_until else None
        out["examples"] = list(self.examples)
        out["version"] = self.version
        return out

    def same_figures(self, other: Alert) -> bool:
        keys = ("before", "after", "interval_low", "interval_high", "n_before", "n_after", "examples", "detail")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


SILENCE_COLUMNS = ("id", "alert_id", "agent", "kind", "until", "created_at", "created_by", "comment")


@dataclass(frozen=True)
class Silence:
    """Notifications for matching alerts are held back until ``until``: one alert, or an agent's (of one
    kind, or of every kind)."""

    id: str
    alert_id: str
    agent: str
    kind: str
    until: dt.datetime
    created_at: dt.datetime
    created_by: str
    comment: str

    def matches(self, alert: Alert, now: dt.datetime) -> bool:
        if self.until <= now:
            return False
        if self.alert_id:
            return self.alert_id == alert.id
        return self.agent in ("", alert.agent) and self.kind in ("", alert.kind)

    def row(self, version: int) -> list[Any]:
        return [getattr(self, c) for c in SILENCE_COLUMNS] + [version]

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {c: getattr(self, c) for c in SILENCE_COLUMNS}
        for name in ("until", "created_at"):
            out[name] = getattr(self, name).astimezone(dt.UTC).isoformat()
        return out


def from_row(names: Sequence[str], row: Sequence[Any]) -> Alert:
    data = dict(zip(names, row, strict=True))
    data["examples"] = tuple(data.get("examples") or ())
    for name in ("opened_at", "updated_at", "resolved_at", "acknowledged_at"):
        value = data.get(name)
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            data[name] = value.replace(tzinfo=dt.UTC)
    return Alert(**data)
