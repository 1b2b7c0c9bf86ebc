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
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from clickhouse_connect.driver.client import Client

from toolwatch.alerts.method import Counts, Design, Looks, Verdict, step
from toolwatch.analyzers import runner
from toolwatch.analyzers.alerting import active_silences, session_facts
from toolwatch.analyzers.stats import difference_interval, wilson
from toolwatch.schemas.alerts import COLUMNS, METRICS, Alert, Silence, alert_id, from_row
from toolwatch.schemas.settings import Settings, ThresholdRule
from toolwatch.schemas.vocab import INDICATORS, AlertKind, Indicator, SwitchKind
from toolwatch.store.handle import StoreHandle

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


def utc(value: Any) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise TypeError(f"not a datetime: {value!r}")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


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


class Evaluator:
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
        writes = _Writes()
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

    def _detect(self, rows: list[dict[str, Any]], writes: _Writes) -> None:
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

    # --- 3. tests -------------------------------------------------------------------------------------------

    def _sides(
        self, c: Client, agent: str, model: str, since: dt.datetime, until: dt.datetime, split: dt.datetime, limit: int
    ) -> Side:
        rows = runner.typed(
            c, "indicator_counts", since=since, until=until, split=split, agent=agent, model=model, limit=limit
        )
        return Side.of(rows[0] if rows else None)

    def _baseline(self, c: Client, ev: SwitchEvent, now: dt.datetime) -> Side:
        """The old model's side: its most recent ``alert_baseline_sessions`` sessions before the switch (found
        in widening windows, kept for an hour), and its sessions since (a partial rollout's other share)."""
        limit = self.settings.alert_baseline_sessions
        cached = self.baselines.get(ev.id)
        if cached is None or now - cached[0] > BASELINE_KEPT:
            side = Side()
            for span in BASELINE_SPANS:
                since = max(ev.ts - span, ev.ts - self.baseline)
                side = self._sides(c, ev.agent, ev.old_model, since, ev.ts, ev.ts, limit)
                if side.n >= limit or since <= ev.ts - self.baseline:
                    break
            self.baselines[ev.id] = (now, side)
            cached = self.baselines[ev.id]
        return cached[1].plus(self._sides(c, ev.agent, ev.old_model, ev.ts, now, ev.ts, limit))

    def _switch_tests(self, c: Client, now: dt.datetime, writes: _Writes) -> list[Change]:
        changes: list[Change] = []
        for ev in list(self.events.values()):
            if ev.ts < now - ACTIVE_FOR:
                continue
            if ev.n_new >= self.design.horizon and not any(
                alert_id("switch_regression", ev.id, i) in self.open for i in INDICATORS
            ):
                continue  # tested to the end, nothing open
            before = self._baseline(c, ev, now)
            after = self._sides(c, ev.agent, ev.new_model, ev.ts, now, ev.ts, MAX_LIMIT)
            share = after.n / (after.n + before.split_n) if after.n + before.split_n else 0.0
            kind: SwitchKind = "silent" if ev.kind == "silent" else "full" if share >= FULL_SHARE else "partial"
            if (ev.n_new, ev.n_old, ev.kind, round(ev.share, 6)) != (after.n, before.split_n, kind, round(share, 6)):
                ev.n_new, ev.n_old, ev.kind, ev.share = after.n, before.split_n, kind, share
                ev.version += 1
                writes.events[ev.id] = ev
            where = f"{ev.kind} switch at {ev.ts.isoformat()}, share {ev.share:.0%}"
            aid = alert_id("switch_regression", ev.id)
            changes += self._test(c, "switch_regression", aid, f"switch:{ev.id}", ev, before, after, now, writes, where)
        return changes

    def _test(
        self,
        c: Client,
        kind: AlertKind,
        aid: str,
        test: str,
        ev: SwitchEvent | _Pair,
        before: Side,
        after: Side,
        now: dt.datetime,
        writes: _Writes,
        where: str,
    ) -> list[Change]:
        """Look at every indicator of one test; open its alert (one per test: the first indicator that
        decided names the metric, later ones are listed) or follow the one already open."""
        verdicts = {i: self._look(test, i, counts(before, after, i), writes) for i in INDICATORS}
        worse = [i for i in INDICATORS if verdicts[i].regressed]
        if aid in self.open:
            return self._follow(c, aid, before, after, worse, now, writes, ev if isinstance(ev, SwitchEvent) else None)
        fresh = [i for i in worse if verdicts[i].looked]
        if not fresh or aid in self.known:
            return []
        first = min(fresh, key=lambda i: (verdicts[i].p_value or 1.0, INDICATORS.index(i)))
        v = verdicts[first]
        detail = f"{where}; p = {v.p_value:.2g} at level {v.level:.2g}"
        figures = counts(before, after, first)
        low, high = difference_interval(figures.x_after, figures.n_after, figures.x_before, figures.n_before)
        alert = Alert(
            id=aid,
            version=1,
            agent=ev.agent,
            kind=kind,
            state="open",
            old_model=ev.old_model,
            new_model=ev.new_model,
            metric=METRICS[first],
            before=figures.before,
            after=figures.after,
            interval_low=low,
            interval_high=high,
            n_before=figures.n_before,
            n_after=figures.n_after,
            method=self.design.describe(),
            detail=detail + _also(worse, first, before, after),
            examples=self._links(after.example(first)),
            opened_at=now,
            updated_at=now,
        )
        return [self._write(alert, writes, notify=True, now=now)]

    def _look(self, test: str, indicator: Indicator, figures: Counts, writes: _Writes) -> Verdict:
        looks = self.looks.get((test, indicator), Looks())
        verdict = step(self.design, looks, figures)
        if verdict.looks != looks:
            self.looks[(test, indicator)] = verdict.looks
            writes.looks[(test, indicator)] = verdict.looks
        return verdict

    def _links(self, skeys: tuple[str, ...]) -> tuple[str, ...]:
        base = self.settings.public_url
        return tuple(f"{base}/_toolwatch/session?session={quote(s, safe='')}" for s in skeys)

    def _write(self, alert: Alert, writes: _Writes, notify: bool, now: dt.datetime) -> Change:
        self.known.add(alert.id)
        if alert.state == "open":
            self.open[alert.id] = alert
        else:
            self.open.pop(alert.id, None)
        writes.alerts.append(alert)
        silenced = any(s.matches(alert, now) for s in self.silences.values())
        return Change(alert, notify, silenced)

    def _follow(
        self,
        c: Client,
        aid: str,
        before: Side,
        after: Side,
        worse: list[Indicator],
        now: dt.datetime,
        writes: _Writes,
        ev: SwitchEvent | None,
    ) -> list[Change]:
        """An open alert of a test: resolve it, or update its figures."""
        alert = self.open[aid]
        indicator = next(i for i, m in METRICS.items() if m == alert.metric)
        if ev is not None and self._rolled_back(ev, now):
            return [self._resolve(alert, now, writes, "the agent moved off the new model")]
        since = self._sides(c, alert.agent, alert.new_model, alert.opened_at, now, alert.opened_at, MAX_LIMIT)
        x, n = since.count(indicator)
        if n >= 2 * self.design.min_sessions and x / n - alert.before < self.design.min_effect / 2:
            return [self._resolve(alert, now, writes, f"{n} sessions since it opened are back to {x / n:.1%}")]
        figures = counts(before, after, indicator)
        low, high = difference_interval(figures.x_after, figures.n_after, figures.x_before, figures.n_before)
        updated = alert.model_copy(
            update={
                "before": figures.before,
                "after": figures.after,
                "interval_low": low,
                "interval_high": high,
                "n_before": figures.n_before,
                "n_after": figures.n_after,
                "examples": self._links(after.example(indicator)) or alert.examples,
                "detail": alert.detail.split(ALSO, 1)[0] + _also(worse, indicator, before, after),
            }
        )
        if updated.same_figures(alert):
            return []
        update = {"version": alert.version + 1, "updated_at": now}
        return [self._write(updated.model_copy(update=update), writes, False, now)]

    def _rolled_back(self, ev: SwitchEvent, now: dt.datetime) -> bool:
        last_new = self.seen.get((ev.agent, ev.new_model))
        if last_new is None or now - last_new < RESOLVE_AFTER:
            return False
        return any(t > last_new for (a, m), t in self.seen.items() if a == ev.agent and m != ev.new_model)

    def _resolve(self, alert: Alert, now: dt.datetime, writes: _Writes, why: str) -> Change:
        resolved = alert.model_copy(
            update={
                "version": alert.version + 1,
                "state": "resolved",
                "updated_at": now,
                "resolved_at": now,
                "detail": f"{alert.detail}; resolved: {why}",
            }
        )
        return self._write(resolved, writes, notify=True, now=now)

    # --- drift ----------------------------------------------------------------------------------------------

    def _drift(self, c: Client, now: dt.datetime, writes: _Writes) -> list[Change]:
        day = now.date()
        start = dt.datetime.combine(day, dt.time(), dt.UTC)
        if self.drift_base is None or self.drift_base[0] != day:
            limit = self.settings.alert_baseline_sessions
            found: dict[tuple[str, str], Side] = {}
            for span in (dt.timedelta(days=1), self.baseline):  # widening: most pairs fill up in a day
                since = start - min(span, self.baseline)
                for r in runner.typed(
                    c, "indicator_counts", since=since, until=start, split=start, agent="", model="", limit=limit
                ):
                    found.setdefault((r["agent"], r["model"]), Side.of(r))
                    if r["n"] > found[(r["agent"], r["model"])].n:
                        found[(r["agent"], r["model"])] = Side.of(r)
                if span >= self.baseline or all(side.n >= limit for side in found.values()):
                    break
            self.drift_base = (day, found)
        base = self.drift_base[1]
        recent = runner.typed(
            c, "indicator_counts", since=start, until=now, split=start, agent="", model="", limit=MAX_LIMIT
        )
        switched = {(e.agent, e.new_model) for e in self.events.values() if e.ts >= start - self.baseline}
        changes: list[Change] = []
        followed: set[str] = set()
        for row in recent:
            key = (row["agent"], row["model"])
            if key in switched or key not in base:
                continue
            pair = _Pair(key[0], key[1], key[1])
            where = f"{day.isoformat()} against the {self.settings.alert_baseline_days:g} days before"
            aid = alert_id("drift", *key, day.isoformat())
            test = f"drift:{key[0]}:{key[1]}:{day.isoformat()}"
            changes += self._test(c, "drift", aid, test, pair, base[key], Side.of(row), now, writes, where)
            followed.add(aid)
        for alert in [a for a in self.open.values() if a.kind == "drift" and a.id not in followed]:
            # opened on an earlier day: followed against that day's figures until it resolves
            lately = self._sides(c, alert.agent, alert.new_model, alert.opened_at, now, alert.opened_at, MAX_LIMIT)
            changes += self._follow(
                c, alert.id, base.get((alert.agent, alert.new_model), Side()), lately, [], now, writes, None
            )
        return changes

    # --- threshold rules ------------------------------------------------------------------------------------

    def _thresholds(self, c: Client, now: dt.datetime, writes: _Writes) -> list[Change]:
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

    def _threshold(self, rule: ThresholdRule, row: dict[str, Any], now: dt.datetime, writes: _Writes) -> list[Change]:
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


ALSO = " | also worse: "


def _also(worse: list[Indicator], first: Indicator, before: Side, after: Side) -> str:
    others = [i for i in worse if i != first]
    if not others:
        return ""
    parts = []
    for i in others:
        f = counts(before, after, i)
        parts.append(f"{METRICS[i]} {f.before:.1%} -> {f.after:.1%}")
    return ALSO + ", ".join(parts)


@dataclass(frozen=True)
class _Pair:
    """What a drift test compares: one agent's model against itself."""

    agent: str
    old_model: str
    new_model: str


@dataclass
class _Writes:
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
