"""Alert notifications: a real webhook receiver on 127.0.0.1 that can be down, refuse, or accept; a store per
test; an injected clock, so that backoff is waited out by moving the clock, never by sleeping."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.harness import make_settings
from toolwatch.alerts.method import METHOD
from toolwatch.alerts.notify import Notifier, backoff
from toolwatch.schemas.alerts import Alert
from toolwatch.schemas.vocab import AlertState
from toolwatch.store.handle import StoreHandle

HOUR = 3600.0


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int

    @property
    def key(self) -> str:
        return self.headers.get("Idempotency-Key", "")


class Receiver:
    """Answers 200 unless told otherwise: ``statuses`` are answered first, one per request; keys in
    ``refuse`` always get their status; ``down()`` closes the port and ``up()`` opens it again."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.statuses: deque[int] = deque()
        self.refuse: dict[str, int] = {}
        self.port = 0

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await self.up()
        return self

    async def handle(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        status = self.refuse.get(key) or (self.statuses.popleft() if self.statuses else 200)
        self.requests.append(Request(request.path, dict(request.headers), await request.json(), status))
        return web.json_response({"ok": status == 200}, status=status)

    async def up(self) -> None:
        self.site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await self.site.start()
        self.port = self.runner.addresses[0][1]

    async def down(self) -> None:
        await self.site.stop()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def accepted(self, path: str = "/hook") -> list[Request]:
        return [r for r in self.requests if r.status == 200 and r.path == path]


class Clock:
    def __init__(self) -> None:
        self.now = 1_760_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    try:
        yield r
    finally:
        await r.runner.cleanup()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def shared_store(store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreHandle]:
    """One migrated database for the module (a migration takes a second); each test starts with an empty
    outbox."""
    store = StoreHandle(make_settings(store_path, tmp_path_factory.mktemp("spool")))
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def store(shared_store: StoreHandle) -> StoreHandle:
    shared_store.run(lambda c: c.command("TRUNCATE TABLE alert_outbox"))
    return shared_store


@pytest.fixture
def notifier(store: StoreHandle, clock: Clock) -> Callable[..., Notifier]:
    """Makes a notifier on the test's store with the settings given (a restart: another one)."""

    def make(**settings: Any) -> Notifier:
        configured = store.settings.model_copy(update=settings)
        return Notifier(configured, store, clock=clock, backoff_base=0.05, backoff_cap=1.0, timeout=5.0)

    return make


def alert(state: AlertState = "open", version: int = 1, id: str = "a1") -> Alert:
    opened = dt.datetime(2025, 10, 1, 12, tzinfo=dt.UTC)
    return Alert(
        id=id,
        version=version,
        agent="support-bot",
        kind="switch_regression",
        state=state,
        old_model="gpt-4o",
        new_model="glm-4.5",
        metric="malformed_session_rate",
        before=0.02,
        after=0.12,
        interval_low=0.05,
        interval_high=0.15,
        n_before=150,
        n_after=150,
        method=METHOD,
        detail="p = 0.0004 at 150 sessions",
        examples=(
            "https://tw.example.com/_toolwatch/session?session=k%3A1",
            "https://tw.example.com/_toolwatch/session?session=k%3A2",
        ),
        opened_at=opened,
        updated_at=opened + dt.timedelta(hours=version),
        resolved_at=opened + dt.timedelta(hours=version) if state == "resolved" else None,
    )


def outbox(store: StoreHandle) -> dict[tuple[str, str], dict[str, Any]]:
    """The latest version of every outbox row, by (key, target)."""

    def read(client: Any) -> list[dict[str, Any]]:
        r = client.query("SELECT * FROM alert_outbox ORDER BY key, target, version DESC LIMIT 1 BY key, target")
        return [dict(zip(r.column_names, row, strict=True)) for row in r.result_rows]

    return {(row["key"], row["target"]): row for row in store.run(read)}


async def retry(n: Notifier, clock: Clock, times: int = 1) -> None:
    """Move the clock past any backoff and deliver what is then due, ``times`` times."""
    for _ in range(times):
        clock.advance(10.0)
        await n.drain(5.0)


async def test_open_then_resolved_are_two_notifications_with_keys_of_their_own(
    receiver: Receiver, notifier: Callable[..., Notifier]
) -> None:
    n = notifier(alert_webhook_url=receiver.url("/hook"))
    assert n.targets == ("webhook",)
    opened, resolved = alert("open", 1), alert("resolved", 2)
    assert n.enqueue(opened, silenced=False) == ["a1.1"]
    await n.drain(5.0)
    assert n.enqueue(resolved, silenced=False) == ["a1.2"]
    await n.drain(5.0)

    first, second = receiver.requests
    assert [r.status for r in receiver.requests] == [200, 200]
    assert [r.key for r in receiver.requests] == ["a1.1", "a1.2"]
    for request, sent, event in ((first, opened, "alert.open"), (second, resolved, "alert.resolved")):
        assert request.body["idempotency_key"] == request.key
        assert request.body["event"] == event
        assert request.body["alert"] == sent.public()
        assert dt.datetime.fromisoformat(request.body["sent_at"]).tzinfo is not None
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["User-Agent"] == "toolwatch"
    assert n.pending() == 0
    rows = outbox(n.store)
    assert {k: (r["status"], r["attempts"], r["state"]) for k, r in rows.items()} == {
        ("a1.1", "webhook"): ("delivered", 1, "open"),
        ("a1.2", "webhook"): ("delivered", 1, "resolved"),
    }
    stored = json.loads(rows[("a1.1", "webhook")]["payload"])
    assert {k: v for k, v in stored.items() if k != "sent_at"} == {
        k: v for k, v in first.body.items() if k != "sent_at"
    }


async def test_slack_target_gets_a_slack_message_with_the_same_key(
    receiver: Receiver, notifier: Callable[..., Notifier]
) -> None:
    n = notifier(
        alert_webhook_url=receiver.url("/hook"),
        alert_slack_url=receiver.url("/slack"),
        public_url="https://tw.example.com/",
    )
    assert n.targets == ("webhook", "slack")
    assert n.enqueue(alert("open", 1), silenced=False) == ["a1.1", "a1.1"]
    await n.drain(5.0)
    n.enqueue(alert("resolved", 2), silenced=False)
    await n.drain(5.0)

    [generic, _] = receiver.accepted("/hook")
    opened, resolved = receiver.accepted("/slack")
    assert opened.key == generic.key == "a1.1" and resolved.key == "a1.2"
    assert set(opened.body) == {"text", "blocks"}
    summary = (
        ":rotating_light: Regression on agent support-bot after switch gpt-4o → glm-4.5: "
        "malformed_session_rate 2.0% → 12.0% (n 150/150)"
    )
    assert opened.body["text"].startswith(summary)
    assert "<https://tw.example.com/_toolwatch/session?session=k%3A1|first example>" in opened.body["text"]
    assert "<https://tw.example.com/_toolwatch/|dashboard>" in opened.body["text"]
    section, context = opened.body["blocks"]
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": summary}}
    assert "p = 0.0004 at 150 sessions" in context["elements"][0]["text"]
    assert resolved.body["text"].startswith(":white_check_mark: Resolved: Regression on agent support-bot")
    assert opened.headers["Content-Type"] == "application/json"


async def test_a_receiver_that_was_down_gets_each_change_once_in_order(
    receiver: Receiver, notifier: Callable[..., Notifier], clock: Clock
) -> None:
    n = notifier(alert_webhook_url=receiver.url("/hook"))
    await receiver.down()
    n.enqueue(alert("open", 1), silenced=False)
    await n.drain(5.0)  # connection refused
    n.enqueue(alert("resolved", 2), silenced=False)
    await n.drain(5.0)  # the open is backing off, and the resolved waits behind it
    assert receiver.requests == [] and n.pending() == 2
    row = outbox(n.store)[("a1.1", "webhook")]
    assert (row["status"], row["attempts"], row["version"]) == ("pending", 1, 2)
    assert row["last_error"] and "/hook" not in row["last_error"]

    await receiver.up()
    receiver.statuses.extend([503, 503])
    await retry(n, clock, times=2)
    assert [(r.key, r.status) for r in receiver.requests] == [("a1.1", 503), ("a1.1", 503)]
    await retry(n, clock, times=3)

    assert [(r.key, r.status) for r in receiver.requests] == [("a1.1", 503)] * 2 + [("a1.1", 200), ("a1.2", 200)]
    assert [r.body["event"] for r in receiver.accepted()] == ["alert.open", "alert.resolved"]
    assert n.pending() == 0
    rows = outbox(n.store)
    assert (rows[("a1.1", "webhook")]["status"], rows[("a1.1", "webhook")]["attempts"]) == ("delivered", 4)
    assert rows[("a1.1", "webhook")]["version"] == 5  # created, then one version per attempt
    assert (rows[("a1.2", "webhook")]["status"], rows[("a1.2", "webhook")]["attempts"]) == ("delivered", 1)


async def test_a_500_is_retried_and_a_restart_after_delivery_sends_nothing(
    receiver: Receiver, notifier: Callable[..., Notifier], clock: Clock
) -> None:
    n = notifier(alert_webhook_url=receiver.url("/hook"))
    receiver.statuses.append(500)
    n.enqueue(alert("open", 1), silenced=False)
    await n.drain(5.0)
    assert [r.status for r in receiver.requests] == [500] and n.pending() == 1
    await retry(n, clock, times=3)
    assert [(r.key, r.status) for r in receiver.requests] == [("a1.1", 500), ("a1.1", 200)]

    restarted = notifier(alert_webhook_url=receiver.url("/hook"))
    restarted.load()
    assert restarted.pending() == 0
    await retry(restarted, clock, times=2)
    assert len(receiver.requests) == 2


async def test_a_restart_before_delivery_sends_what_was_pending(
    receiver: Receiver, notifier: Callable[..., Notifier], clock: Clock
) -> None:
    n = notifier(alert_webhook_url=receiver.url("/hook"))
    await receiver.down()
    n.enqueue(alert("open", 1), silenced=False)
    n.enqueue(alert("resolved", 2), silenced=False)
    n.enqueue(alert("open", 1, id="b1"), silenced=False)
    await n.drain(5.0)
    assert n.pending() == 3

    await receiver.up()
    restarted = notifier(alert_webhook_url=receiver.url("/hook"))
    restarted.load()
    assert restarted.pending() == 3
    await restarted.drain(5.0)
    keys = [r.key for r in receiver.requests]
    assert sorted(keys) == ["a1.1", "a1.2", "b1.1"]
    assert keys.index("a1.1") < keys.index("a1.2")
    await retry(restarted, clock, times=2)
    assert len(receiver.requests) == 3 and restarted.pending() == 0
    rows = outbox(n.store)
    assert {k[0]: (r["status"], r["attempts"]) for k, r in rows.items()} == {
        "a1.1": ("delivered", 2),
        "a1.2": ("delivered", 1),  # it waited behind the open and was never tried before the restart
        "b1.1": ("delivered", 2),
    }


async def test_a_silenced_change_is_stored_and_not_sent(
    receiver: Receiver, notifier: Callable[..., Notifier], clock: Clock
) -> None:
    n = notifier(alert_webhook_url=receiver.url("/hook"), alert_slack_url=receiver.url("/slack"))
    assert n.enqueue(alert("open", 1), silenced=True) == ["a1.1", "a1.1"]
    assert n.pending() == 0
    await retry(n, clock)
    restarted = notifier(alert_webhook_url=receiver.url("/hook"), alert_slack_url=receiver.url("/slack"))
    restarted.load()
    await retry(restarted, clock)
    assert receiver.requests == [] and restarted.pending() == 0
    assert {k: r["status"] for k, r in outbox(n.store).items()} == {
        ("a1.1", "webhook"): "silenced",
        ("a1.1", "slack"): "silenced",
    }


async def test_without_targets_nothing_is_stored(notifier: Callable[..., Notifier]) -> None:
    n = notifier()
    assert n.targets == ()
    assert n.enqueue(alert("open", 1), silenced=False) == []
    await n.drain(5.0)
    assert n.pending() == 0
    assert outbox(n.store) == {}


async def test_a_change_enqueued_again_is_one_notification(
    receiver: Receiver, notifier: Callable[..., Notifier], clock: Clock
) -> None:
    n = notifier(alert_webhook_url=receiver.url("/hook"))
    assert n.enqueue(alert("open", 1), silenced=False) == ["a1.1"]
    assert n.enqueue(alert("open", 1), silenced=False) == []
    await n.drain(5.0)
    restarted = notifier(alert_webhook_url=receiver.url("/hook"))
    restarted.load()
    assert restarted.enqueue(alert("open", 1), silenced=False) == []
    await retry(restarted, clock)
    assert [r.key for r in receiver.requests] == ["a1.1"]


@pytest.mark.parametrize(("status", "final"), [(400, "failed"), (429, "pending"), (408, "pending")])
async def test_a_refusal_is_given_up_after_five_attempts_and_the_next_change_goes_out(
    receiver: Receiver, notifier: Callable[..., Notifier], clock: Clock, status: int, final: str
) -> None:
    n = notifier(alert_webhook_url=receiver.url("/hook"))
    receiver.refuse["a1.1"] = status
    n.enqueue(alert("open", 1), silenced=False)
    n.enqueue(alert("resolved", 2), silenced=False)
    await n.drain(5.0)
    await retry(n, clock, times=6)
    rows = outbox(n.store)
    assert rows[("a1.1", "webhook")]["status"] == final
    if final == "failed":
        assert rows[("a1.1", "webhook")]["attempts"] == 5
        assert [r.key for r in receiver.requests] == ["a1.1"] * 5 + ["a1.2"]
        assert rows[("a1.2", "webhook")]["status"] == "delivered"
    else:  # retried, and the resolved still waits behind it
        assert [r.key for r in receiver.requests] == ["a1.1"] * 7
        assert rows[("a1.2", "webhook")]["status"] == "pending"


async def test_a_failing_receiver_is_retried_for_a_day_then_given_up(
    receiver: Receiver, notifier: Callable[..., Notifier], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    n = notifier(alert_webhook_url=receiver.url("/hook"))
    receiver.refuse["a1.1"] = 503
    n.enqueue(alert("open", 1), silenced=False)
    await n.drain(5.0)
    clock.advance(23 * HOUR)
    await n.drain(5.0)
    assert outbox(n.store)[("a1.1", "webhook")]["status"] == "pending" and n.pending() == 1
    with caplog.at_level(logging.WARNING, logger="toolwatch.alerts"):
        clock.advance(2 * HOUR)
        await n.drain(5.0)
    row = outbox(n.store)[("a1.1", "webhook")]
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 3, 'HTTP 503 {"ok": false}')
    assert n.pending() == 0
    assert any("given up" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


async def test_other_alerts_do_not_wait_for_a_failing_one(
    receiver: Receiver, notifier: Callable[..., Notifier]
) -> None:
    n = notifier(alert_webhook_url=receiver.url("/hook"))
    receiver.refuse["a1.1"] = 503
    n.enqueue(alert("open", 1), silenced=False)
    n.enqueue(alert("open", 1, id="b1"), silenced=False)
    n.enqueue(alert("resolved", 2, id="b1"), silenced=False)
    await n.drain(5.0)
    assert [r.key for r in receiver.accepted()] == ["b1.1", "b1.2"]
    assert n.pending() == 1


async def test_run_delivers_in_the_background_what_any_thread_enqueues(receiver: Receiver, store: StoreHandle) -> None:
    settings = store.settings.model_copy(update={"alert_webhook_url": receiver.url("/hook")})
    n = Notifier(settings, store, backoff_base=0.01, backoff_cap=0.05)
    receiver.statuses.append(503)
    task = asyncio.create_task(n.run())
    try:
        await asyncio.to_thread(n.enqueue, alert("open", 1), False)
        await until(lambda: len(receiver.accepted()) == 1)
        await asyncio.to_thread(n.enqueue, alert("resolved", 2), False)
        await until(lambda: len(receiver.accepted()) == 2)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [(r.key, r.status) for r in receiver.requests] == [("a1.1", 503), ("a1.1", 200), ("a1.2", 200)]


async def test_run_loads_what_a_start_without_the_store_could_not(
    receiver: Receiver, notifier: Callable[..., Notifier], store: StoreHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = notifier(alert_webhook_url=receiver.url("/hook"))
    await receiver.down()
    n.enqueue(alert("open", 1), silenced=False)
    await n.drain(5.0)
    await receiver.up()

    restarted = notifier(alert_webhook_url=receiver.url("/hook"))
    run = store.run
    calls: list[int] = []

    def away_once(fn: Callable[[Any], Any]) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("store away")
        return run(fn)

    monkeypatch.setattr(store, "run", away_once)
    with pytest.raises(ConnectionError):
        restarted.load()
    task = asyncio.create_task(restarted.run())
    try:
        await until(lambda: len(receiver.accepted()) == 1)
        await until(lambda: restarted.pending() == 0)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [r.key for r in receiver.accepted()] == ["a1.1"]


async def until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    async with asyncio.timeout(limit):
        while not condition():
            await asyncio.sleep(0.01)


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    assert [backoff(a, 1.0, 300.0, rand=lambda: 0.5) for a in (1, 2, 3, 9, 10, 500)] == [1, 2, 4, 256, 300, 300]
    assert backoff(3, 1.0, 300.0, rand=lambda: 0.0) == pytest.approx(4 * 0.8)
    assert backoff(3, 1.0, 300.0, rand=lambda: 1.0) == pytest.approx(4 * 1.2)
