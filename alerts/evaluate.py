"""The evaluator: every ``alert_interval``, in the one recorder that evaluates (see ``Settings.evaluates_alerts``).

One evaluation, incremental, never re-running the whole report:

1. **Session indicators.** The sessions with a step since the last evaluation (and every earlier step of
   those sessions) are recomputed by the analyzers' own session SQL (``session_facts.sql``) and stored in
   ``session_facts``; the latest version of a session wins.
2. **Switches.** An agent (the ``Toolwatch-Agent`` header, else upstream and API-key fingerprint) whose
   session lands on a model it has not used within ``alert_switch_gap_days``, while it used another one
   within ``alert_baseline_days``, has switched: a row in ``switch_events`` with the old model (the one it
   used last), the new one, and the new model's share of the agent's sessions since (``full`` from 95 %,
   else ``partial``; ``silent`` when the requested model name stayed the same and the upstream returned
   another model).
3. **Tests.** Each switch is tested per indicator by the decision function (``method.step``) with the old
   model's recent sessions against the new model's, until the new model has ``alert_horizon_sessions``.
   Without a switch, each agent and model is tested for drift: the current UTC day against the
   ``alert_baseline_days`` before it. Threshold rules read the per-minute rollups.
4. **Alerts.** A test that decides opens an alert; while open it is updated (a new version when its figures
   change); it resolves when the agent has moved off the new model for an hour, or when the sessions since it
   opened (at least twice the minimum sample) are back within half the minimum effect, or, for a threshold
   rule, when the rate is back at or below the threshold. Every state change is returned for notification.

State survives restarts in ClickHouse (``alert_looks`` above all: a test never looks at a checkpoint twice).

This module holds the entry point, ``Evaluator`` (loading its state, steps 1 and 2, the threshold rules and
its status); the constants and data types are in ``facts.py``, the tests of step 3 and the alerts they open,
update and resolve in ``baselines.py`` (``BaselineTests``, which ``Evaluator`` extends).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from clickhouse_connect.driver.client import Client

from toolwatch.alerts.baselines import BaselineTests
from toolwatch.alerts.facts import (
    ACTIVE_FOR,
    BACKFILL,
    EPOCH,
    FACT_COLUMNS,
    OVERLAP,
    REACH_BACK,
    SWITCH_COLUMNS,
    Change,
    Side,
    SwitchEvent,
    Writes,
)
from toolwatch.alerts.method import Design, Looks
from toolwatch.analyzers import runner
from toolwatch.analyzers.alerting import active_silences, session_facts
from toolwatch.analyzers.stats import wilson
from toolwatch.schemas.alerts import COLUMNS, Alert, Silence, alert_id, from_row
from toolwatch.schemas.settings import Settings, ThresholdRule
from toolwatch.store.handle import StoreHandle


def utc(value: Any) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise TypeError(f"not a datetime: {value!r}")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Evaluator(BaselineTests):
    def __init__(
        self,
        settings: Settings,
        store: StoreHandle,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.design = Design(
            alpha=settings.alert_alpha,
            min_sessions=settings.alert_min_sessions,
            min_effect=settings.alert_min_effect,
            min_relative_effect=settings.alert_min_relative_effect,
            horizon=settings.alert_horizon_sessions,
        )
        self.baseline = dt.timedelta(days=settings.alert_baseline_days)
        self.gap = dt.timedelta(days=settings.alert_switch_gap_days)
        self.lock = threading.Lock()
        self.loaded = False
        self.hwm: dt.datetime | None = None  # the `until` of the last refresh
        self.seen: dict[tuple[str, str], dt.datetime] = {}  # (agent, model) -> its latest session start
        self.requested: dict[tuple[str, str], str] = {}
        self.events: dict[str, SwitchEvent] = {}
        self.looks: dict[tuple[str, str], Looks] = {}
        self.open: dict[str, Alert] = {}
        self.known: set[str] = set()  # every alert id opened recently, open or not: never opened twice
        self.thresholds: dict[tuple[str, str], str] = {}  # (rule, model) -> open alert id
        self.silences: dict[str, Silence] = {}
        self.drift_base: tuple[dt.date, dict[tuple[str, str], Side]] | None = None
        self.baselines: dict[str, tuple[dt.datetime, Side]] = {}  # switch id -> (computed at, old side)
        self.evaluations = 0
        self.last_evaluation: dt.datetime | None = None
        self.last_error: str | None = None

    # --- one evaluation -------------------------------------------------------------------------------------

    def evaluate(self, now: dt.datetime | None = None) -> list[Change]:
        """One evaluation (blocking: run it in a worker thread). Returns the alert versions it wrote."""
        at = now or self.clock()
        with self.lock:
            try:
                changes: list[Change] = self.store.run(lambda c: self._evaluate(c, at))
            except Exception as e:
                self.loaded = False  # memory may be ahead of the store: read it back next time
                self.last_error = f"{type(e).__name__}: {e}"[:300]
                raise
            self.last_error = None
            self.evaluations += 1
            self.last_evaluation = at
            return changes

    def _evaluate(self, c: Client, now: dt.datetime) -> list[Change]:
        if not self.loaded:
            self._load(c, now)
        self._load_alerts(c, now)  # acknowledgements and silences may come from anyone, through the store
        writes = Writes()
        rows = self._refresh(c, now)
        self._detect(rows, writes)
        changes = self._switch_tests(c, now, writes)
        changes += self._drift(c, now, writes)
        changes += self._thresholds(c, now, writes)
        writes.flush(c)
        self.hwm = now
        return changes

    def _load(self, c: Client, now: dt.datetime) -> None:
        self.seen, self.requested, self.events, self.looks = {}, {}, {}, {}
        self.drift_base, self.baselines = None, {}
        r = c.query("SELECT max(last_ts) FROM session_facts").result_rows
        latest = utc(r[0][0]) if r and r[0][0] is not None else EPOCH
        self.hwm = latest if latest > EPOCH else None
        horizon = now - self.baseline - self.gap
        for agent, model, ts, requested in c.query(
            "SELECT agent, model, max(ts), argMax(requested, ts) FROM session_facts"
            " WHERE ts >= {h:DateTime64(3)} AND model != '' GROUP BY agent, model",
            parameters={"h": horizon},
        ).result_rows:
            self.seen[(agent, model)] = utc(ts)
            self.requested[(agent, model)] = requested
        q = c.query(
            f"SELECT {', '.join(SWITCH_COLUMNS)}, version FROM switch_events FINAL WHERE ts >= {{h:DateTime64(3)}}",
            parameters={"h": now - ACTIVE_FOR},
        )
        for row in q.result_rows:
            data = dict(zip((*SWITCH_COLUMNS, "version"), row, strict=True))
            data["ts"] = utc(data["ts"])
            ev = SwitchEvent(**data)
            self.events[ev.id] = ev
        for test, metric, passed, spent, decided in c.query(
            "SELECT test, metric, looks, spent, decided FROM alert_looks FINAL"
        ).result_rows:
            self.looks[(test, metric)] = Looks(int(passed), float(spent), bool(decided))
        self.known = {
            r[0]
            for r in c.query(
                "SELECT DISTINCT id FROM alerts WHERE opened_at >= {h:DateTime64(3)}",
                parameters={"h": now - ACTIVE_FOR - BACKFILL},
            ).result_rows
        }
        self.loaded = True

    def _load_alerts(self, c: Client, now: dt.datetime) -> None:
        self.open, self.thresholds = {}, {}
        q = c.query(f"SELECT {', '.join(COLUMNS)} FROM alerts FINAL WHERE state = 'open'")
        for row in q.result_rows:
            alert = from_row(COLUMNS, row)
            self.open[alert.id] = alert
            self.known.add(alert.id)
            if alert.kind == "threshold":
                self.thresholds[(alert.detail.split(":", 1)[0], alert.new_model)] = alert.id
        self._load_silences(c, now)

    def _load_silences(self, c: Client, now: dt.datetime) -> None:
        self.silences = {x.id: x for x in active_silences(c, now)}

    # --- 1. session indicators ------------------------------------------------------------------------------

    def _refresh(self, c: Client, now: dt.datetime) -> list[dict[str, Any]]:
        since = self.hwm - OVERLAP if self.hwm is not None else now - BACKFILL
        rows = session_facts(c, since, now)
        if rows and self.hwm is not None:
            # a session that had steps before the window: read all of them again, so its row stays whole
            earlier = c.query(
                "SELECT min(ts) FROM session_facts WHERE (agent, skey) IN"
                " (SELECT arrayJoin(arrayZip({agents:Array(String)}, {skeys:Array(String)})))"
                " AND ts < {since:DateTime64(3)} AND ts >= {floor:DateTime64(3)}",
                parameters={
                    "agents": [r["agent"] for r in rows],
                    "skeys": [r["skey"] for r in rows],
                    "since": since,
                    "floor": now - REACH_BACK,
                },
            ).result_rows
            first = earlier[0][0] if earlier else None
            if first is not None and utc(first) > EPOCH:
                rows = session_facts(c, utc(first) - dt.timedelta(seconds=1), now)
        if rows:
            stamp = dt.datetime.now(dt.UTC)
            c.insert(
                "session_facts",
                [[r[k] for k in FACT_COLUMNS] + [stamp] for r in rows],
                column_names=[*FACT_COLUMNS, "updated_at"],
            )
        return rows

    # --- 2. switches ----------------------------------------------------------------------------------------

    def _detect(self, rows: list[dict[str, Any]], writes: Writes) -> None:
        for row in sorted(rows, key=lambda r: (utc(r["ts"]), r["skey"])):
            agent, model, ts = row["agent"], row["model"], utc(row["ts"])
            if not model:
                continue
            key = (agent, model)
            previous = self.seen.get(key)
            if previous is None or ts - previous > self.gap:
                others = {
                    m: t for (a, m), t in self.seen.items() if a == agent and m != model and t >= ts - self.baseline
                }
                if others:
                    old = max(others, key=lambda m: (others[m], m))
                    old_requested = self.requested.get((agent, old), "")
                    silent = bool(row["requested"]) and row["requested"] == old_requested
                    ev = SwitchEvent(
                        id=alert_id("switch", agent, old, model, ts.isoformat()),
                        agent=agent,
                        ts=ts,
                        old_model=old,
                        new_model=model,
                        requested=row["requested"],
                        kind="silent" if silent else "full",
                    )
                    if ev.id not in self.events:
                        self.events[ev.id] = ev
                        writes.events[ev.id] = ev
            if previous is None or ts > previous:
                self.seen[key] = ts
                self.requested[key] = row["requested"]

    def switches(self) -> list[SwitchEvent]:
        return sorted(self.events.values(), key=lambda e: e.ts)

    # --- threshold rules ------------------------------------------------------------------------------------

    def _thresholds(self, c: Client, now: dt.datetime, writes: Writes) -> list[Change]:
        changes: list[Change] = []
        for rule in self.settings.alert_rules:
            rows = runner.typed(
                c, "threshold", since=now - dt.timedelta(seconds=rule.window), until=now, model=rule.model
            )
            seen: set[str] = set()
            for row in rows:
                seen.add(row["model"])
                changes += self._threshold(rule, row, now, writes)
            for (name, model), aid in list(self.thresholds.items()):
                if name == rule.name and model not in seen and aid in self.open:
                    changes.append(self._resolve(self.open[aid], now, writes, "no traffic in the window"))
                    del self.thresholds[(name, model)]
        return changes

    def _threshold(self, rule: ThresholdRule, row: dict[str, Any], now: dt.datetime, writes: Writes) -> list[Change]:
        model = row["model"]
        value = row[rule.metric]
        n = int(row["tool_calls"] if rule.metric == "malformed_rate" else row["llm_calls"])
        firing = value is not None and n >= rule.min_count and float(value) > rule.above
        aid = self.thresholds.get((rule.name, model))
        if aid is not None and aid not in self.open:
            aid = None
        if not firing:
            if aid is None or n < rule.min_count:
                return []
            del self.thresholds[(rule.name, model)]
            return [self._resolve(self.open[aid], now, writes, f"{rule.metric} {float(value or 0):.2%}")]
        x = round(float(value) * n)
        low, high = wilson(x, n)
        if aid is None:
            aid = alert_id("threshold", rule.name, model, now.isoformat())
            self.thresholds[(rule.name, model)] = aid
            window = f"{rule.window:g}s"
            method = f"threshold rule {rule.name}: {rule.metric} > {rule.above:g} over {window}"
            alert = Alert(
                id=aid, version=1, agent="*", kind="threshold", state="open", old_model="", new_model=model,
                metric=rule.metric, before=rule.above, after=float(value), interval_low=low, interval_high=high,
                n_before=0, n_after=n, method=method,
                detail=f"{rule.name}: {rule.metric} {float(value):.2%} over the last {window}",
                opened_at=now, updated_at=now,
            )  # fmt: skip
            return [self._write(alert, writes, notify=True, now=now)]
        alert = self.open[aid]
        updated = alert.model_copy(
            update={"after": float(value), "interval_low": low, "interval_high": high, "n_after": n}
        )
        if updated.same_figures(alert):
            return []
        return [
            self._write(
                updated.model_copy(update={"version": alert.version + 1, "updated_at": now}), writes, False, now
            )
        ]

    def open_counts(self) -> dict[tuple[str, str], int]:
        """Open alerts per (agent, kind): the ``toolwatch_alerts_open`` gauge."""
        out: dict[tuple[str, str], int] = {}
        for alert in self.open.values():
            out[(alert.agent, alert.kind)] = out.get((alert.agent, alert.kind), 0) + 1
        return out

    def status(self) -> dict[str, Any]:
        return {
            "evaluations": self.evaluations,
            "last_evaluation": self.last_evaluation.isoformat() if self.last_evaluation else None,
            "open_alerts": len(self.open),
            "switches_tested": sum(1 for e in self.events.values() if e.n_new < self.design.horizon),
            "last_error": self.last_error,
        }
