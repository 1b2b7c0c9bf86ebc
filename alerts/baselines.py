"""The evaluator's tests against a baseline (step 3 of an evaluation, see ``evaluate.py``).

``BaselineTests`` is the part of ``Evaluator`` that compares sessions: each switch's new model against the
old model's baseline (its recent sessions before the switch, and its share since), each agent and model
without a switch against the days before (drift), and the bookkeeping of the alerts these tests open,
update and resolve (also used by the threshold rules in ``evaluate.py``). The state it reads and keeps is
declared here and set up by ``Evaluator.__init__``.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from clickhouse_connect.driver.client import Client

from toolwatch.alerts.facts import (
    ACTIVE_FOR,
    BASELINE_KEPT,
    BASELINE_SPANS,
    FULL_SHARE,
    MAX_LIMIT,
    RESOLVE_AFTER,
    Change,
    Pair,
    Side,
    SwitchEvent,
    Writes,
    counts,
)
from toolwatch.alerts.method import Counts, Design, Looks, Verdict, step
from toolwatch.analyzers import runner
from toolwatch.analyzers.stats import difference_interval
from toolwatch.schemas.alerts import METRICS, Alert, Silence, alert_id
from toolwatch.schemas.settings import Settings
from toolwatch.schemas.vocab import INDICATORS, AlertKind, Indicator, SwitchKind


class BaselineTests:
    """The tests and their alerts; ``Evaluator`` (``evaluate.py``) holds the state and runs them."""

    settings: Settings
    design: Design
    baseline: dt.timedelta
    seen: dict[tuple[str, str], dt.datetime]
    events: dict[str, SwitchEvent]
    looks: dict[tuple[str, str], Looks]
    open: dict[str, Alert]
    known: set[str]
    silences: dict[str, Silence]
    drift_base: tuple[dt.date, dict[tuple[str, str], Side]] | None
    baselines: dict[str, tuple[dt.datetime, Side]]

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

    def _switch_tests(self, c: Client, now: dt.datetime, writes: Writes) -> list[Change]:
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
        ev: SwitchEvent | Pair,
        before: Side,
        after: Side,
        now: dt.datetime,
        writes: Writes,
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

    def _look(self, test: str, indicator: Indicator, figures: Counts, writes: Writes) -> Verdict:
        looks = self.looks.get((test, indicator), Looks())
        verdict = step(self.design, looks, figures)
        if verdict.looks != looks:
            self.looks[(test, indicator)] = verdict.looks
            writes.looks[(test, indicator)] = verdict.looks
        return verdict

    def _links(self, skeys: tuple[str, ...]) -> tuple[str, ...]:
        base = self.settings.public_url
        return tuple(f"{base}/_toolwatch/session?session={quote(s, safe='')}" for s in skeys)

    def _write(self, alert: Alert, writes: Writes, notify: bool, now: dt.datetime) -> Change:
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
        writes: Writes,
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

    def _resolve(self, alert: Alert, now: dt.datetime, writes: Writes, why: str) -> Change:
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

    def _drift(self, c: Client, now: dt.datetime, writes: Writes) -> list[Change]:
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
            pair = Pair(key[0], key[1], key[1])
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
