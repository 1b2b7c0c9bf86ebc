"""The evaluator on recorded traffic (``traffic.py`` replays sessions through the real recorder): switch
detection (full, partial, silent), one alert per regression with its evidence, nothing for an equally good
model, persistence across restarts, resolution on rollback, drift without a switch, threshold rules,
acknowledgement and silences.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.traffic import Session, record, spaced
from tests.harness import make_settings
from toolwatch.alerts.evaluate import Evaluator
from toolwatch.analyzers import alerting
from toolwatch.schemas.settings import Settings
from toolwatch.store.handle import StoreHandle

MINUTE = dt.timedelta(minutes=1)
# a fixed day in the past: the current UTC day is the drift test's "today"
DAY = dt.datetime.combine(dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1), dt.time(), dt.UTC)


class World:
    def __init__(self, settings: Settings, store: StoreHandle, tmp: Path) -> None:
        self.settings, self.store, self.tmp = settings, store, tmp
        self.n = 0

    def record(self, sessions: list[Session]) -> None:
        self.n += 1
        record(self.store, self.tmp / f"spool{self.n}", sessions)

    def evaluator(self) -> Evaluator:
        return Evaluator(self.settings, self.store)

    def alerts(self, **kw: Any) -> list[dict[str, Any]]:
        return self.store.run(lambda c: alerting.list_alerts(c, open_only=False, since=DAY - 30 * MINUTE * 48, **kw))


@pytest.fixture
def world(store_path: Path, tmp_path: Path) -> Iterator[World]:
    settings = make_settings(store_path, tmp_path / "spool")
    store = StoreHandle(settings)
    try:
        yield World(settings, store, tmp_path)
    finally:
        store.close()


def switch(world: World, after_hits: int, model_b: str = "model-b", **kw: Any) -> dt.datetime:
    """150 sessions on model-a (3 malformed), then 150 on ``model_b`` with ``after_hits`` malformed."""
    start = DAY + 2 * dt.timedelta(hours=1)
    world.record(
        spaced(start, 150, 20 * dt.timedelta(seconds=1), "model-a", hits=3)
        + spaced(start + dt.timedelta(hours=1), 150, 20 * dt.timedelta(seconds=1), model_b, hits=after_hits, **kw)
    )
    return start + dt.timedelta(hours=2)  # after the traffic


def test_a_worse_model_after_a_switch_opens_one_alert_with_its_evidence(world: World) -> None:
    now = switch(world, after_hits=18)
    ev = world.evaluator()
    changes = ev.evaluate(now)
    assert [(c.alert.kind, c.alert.state, c.notify) for c in changes] == [("switch_regression", "open", True)]
    alert = changes[0].alert
    assert (alert.agent, alert.old_model, alert.new_model) == ("bot", "model-a", "model-b")
    assert alert.metric == "malformed_session_rate"
    assert (alert.before, alert.after, alert.n_before, alert.n_after) == (0.02, 0.12, 150, 150)
    assert alert.interval_low > 0 and alert.interval_high > 0.1
    assert len(alert.examples) == 5 and all("/_toolwatch/session?session=" in e for e in alert.examples)
    [event] = ev.switches()
    assert (event.kind, event.share, event.n_new, event.n_old) == ("full", 1.0, 150, 0)
    # looked at again, and after a restart: still one alert, no second notification
    assert ev.evaluate(now + MINUTE) == []
    assert world.evaluator().evaluate(now + 2 * MINUTE) == []
    [listed] = world.alerts()
    assert listed["id"] == alert.id and listed["state"] == "open" and listed["version"] == 1
    found = world.store.run(lambda c: alerting.check(c, "bot", now - dt.timedelta(days=2)))
    assert found["open"] == 1
    assert world.store.run(lambda c: alerting.check(c, "other-agent", now - dt.timedelta(days=2)))["open"] == 0


def test_an_equally_good_model_opens_nothing(world: World) -> None:
    now = switch(world, after_hits=3)
    ev = world.evaluator()
    assert ev.evaluate(now) == []
    assert [e.kind for e in ev.switches()] == ["full"]
    assert world.alerts() == []


def test_a_restart_never_looks_at_a_checkpoint_twice(world: World) -> None:
    now = switch(world, after_hits=3)
    first = world.evaluator()
    first.evaluate(now)
    spent = dict(first.looks)
    assert spent and all(lk.passed == 5 for lk in spent.values())  # 30, 45, 67, 100, 150 at once
    second = world.evaluator()
    second.evaluate(now + MINUTE)
    assert second.looks == spent


def test_a_partial_rollout_and_a_silent_change_are_switches(world: World) -> None:
    start = DAY + dt.timedelta(hours=2)
    canary = [Session(start + i * 20 * dt.timedelta(seconds=1), "model-a") for i in range(120)]
    canary += [Session(start + dt.timedelta(hours=1) + i * 30 * dt.timedelta(seconds=1), "model-a") for i in range(70)]
    canary += [
        Session(start + dt.timedelta(hours=1, seconds=10) + i * 30 * dt.timedelta(seconds=1), "model-c")
        for i in range(30)
    ]
    silent = [Session(start + i * 20 * dt.timedelta(seconds=1), "gpt-x", agent="quiet") for i in range(60)]
    silent += [
        Session(start + dt.timedelta(hours=1) + i * 20 * dt.timedelta(seconds=1), "gpt-x", agent="quiet",
                returned="gpt-x-2026-11")
        for i in range(40)
    ]  # fmt: skip
    world.record(canary + silent)
    ev = world.evaluator()
    ev.evaluate(start + dt.timedelta(hours=3))
    events = {e.agent: e for e in ev.switches()}
    assert (events["bot"].kind, events["bot"].new_model, events["bot"].n_new) == ("partial", "model-c", 30)
    assert events["bot"].share == pytest.approx(30 / 99)  # model-a sessions since the first model-c one: 69
    assert (events["quiet"].kind, events["quiet"].old_model, events["quiet"].new_model) == (
        "silent",
        "gpt-x",
        "gpt-x-2026-11",
    )


def test_a_rollback_resolves_the_alert(world: World) -> None:
    now = switch(world, after_hits=18)
    ev = world.evaluator()
    [opened] = ev.evaluate(now)
    back = now + dt.timedelta(hours=2)
    world.record(spaced(back - dt.timedelta(minutes=30), 20, MINUTE, "model-a"))
    [resolved] = ev.evaluate(back)
    assert (resolved.alert.id, resolved.alert.state, resolved.notify) == (opened.alert.id, "resolved", True)
    assert resolved.alert.version == 2 and "moved off the new model" in resolved.alert.detail
    assert world.alerts()[0]["state"] == "resolved"
    assert world.store.run(lambda c: alerting.check(c, "bot", now - dt.timedelta(days=2)))["open"] == 0


def test_drift_without_a_switch(world: World) -> None:
    today = DAY + dt.timedelta(days=1)
    world.record(
        spaced(today - dt.timedelta(hours=18), 150, 2 * MINUTE, "model-a", hits=3)
        + spaced(today + dt.timedelta(minutes=5), 150, 20 * dt.timedelta(seconds=1), "model-a", hits=18)
    )
    ev = world.evaluator()
    changes = ev.evaluate(today + dt.timedelta(hours=1, minutes=5))
    assert [(c.alert.kind, c.alert.old_model, c.alert.new_model) for c in changes] == [("drift", "model-a", "model-a")]
    assert changes[0].alert.n_before == 150 and changes[0].alert.after == 0.12


def test_a_threshold_rule_opens_and_resolves(store_path: Path, tmp_path: Path) -> None:
    rule = {"name": "malformed-high", "metric": "malformed_rate", "above": 0.05, "window": "15m", "min_count": 10}
    settings = make_settings(store_path, tmp_path / "spool", alert_rules=[rule])
    store = StoreHandle(settings)
    try:
        world = World(settings, store, tmp_path)
        start = DAY + dt.timedelta(hours=5)
        world.record(spaced(start, 40, 10 * dt.timedelta(seconds=1), "model-t", hits=8))
        ev = world.evaluator()
        [opened] = ev.evaluate(start + dt.timedelta(minutes=8))
        assert (opened.alert.kind, opened.alert.metric, opened.alert.new_model) == (
            "threshold",
            "malformed_rate",
            "model-t",
        )
        assert opened.alert.after == pytest.approx(8 / 40) and opened.alert.before == 0.05
        world.record(spaced(start + dt.timedelta(minutes=30), 40, 10 * dt.timedelta(seconds=1), "model-t"))
        [resolved] = ev.evaluate(start + dt.timedelta(minutes=38))
        assert (resolved.alert.id, resolved.alert.state) == (opened.alert.id, "resolved")
    finally:
        store.close()


def test_acknowledged_and_silenced_alerts(world: World) -> None:
    world.store.run(lambda c: alerting.silence(c, agent="bot", seconds=10 * 86400 * 3, by="ops", comment="canary"))
    now = switch(world, after_hits=18)
    ev = world.evaluator()
    [opened] = ev.evaluate(now)
    assert opened.silenced
    acked = world.store.run(lambda c: alerting.acknowledge(c, opened.alert.id, "dana"))
    assert acked["acknowledged_by"] == "dana" and acked["version"] == 2
    # the evaluator keeps the acknowledgement when it writes the next version
    world.record(spaced(now + MINUTE, 30, 10 * dt.timedelta(seconds=1), "model-b", hits=5))
    [updated] = ev.evaluate(now + dt.timedelta(minutes=10))
    assert updated.alert.version == 3 and updated.alert.acknowledged_by == "dana" and not updated.notify
    [listed] = world.alerts()
    assert listed["acknowledged_by"] == "dana" and listed["silenced_until"] is not None
    with pytest.raises(alerting.NoSuchAlert):
        world.store.run(lambda c: alerting.acknowledge(c, "nope", "x"))
