"""Delivery of alert state changes to a generic JSON webhook and a Slack-compatible one.

When: the evaluator calls ``enqueue`` once per state change (an alert opened or resolved); the recorder
process calls ``load`` at start, runs ``run`` while it lives and ``drain`` once at shutdown.

What it promises:
- one ``alert_outbox`` row per state change and target, written before anything is sent; every attempt and
  the delivery are written as new versions of that row. Enqueueing a change again adds nothing.
- at least once: a row is marked delivered only after a 2xx answer, and ``load`` picks up what was not
  delivered before a restart. Every request carries the row's idempotency key (``<alert id>.<version>``,
  the same for every target of one change) so that a receiver can drop the rare repeat.
- order: one alert's notifications to one target go out in the order of its versions (a "resolved" never
  overtakes its "open"); other alerts and targets do not wait for them.
- a failed attempt (not 2xx, no connection, no answer in ``timeout``) is tried again after
  ``min(cap, base * 2**(attempts-1))`` seconds, +-20 %, for 24 hours; a 4xx other than 408/429 is given up
  after 5 attempts. Given-up rows are marked ``failed`` and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import orjson
from clickhouse_connect.driver.client import Client

from toolwatch.schemas.alerts import Alert
from toolwatch.schemas.settings import Settings
from toolwatch.schemas.vocab import AlertState, DeliveryStatus, NotifyTarget
from toolwatch.store.handle import StoreHandle

log = logging.getLogger("toolwatch.alerts")

COLUMNS = ("key", "target", "alert_id", "state", "payload", "created_at", "attempts", "last_error", "status", "version")
RETRY_FOR = 24 * 3600.0  # seconds after its creation that a notification is still retried
RELOAD_EVERY = 30.0  # seconds between tries of a load the store was not there for
PERMANENT_AFTER = 5  # attempts before a refusal (4xx other than 408/429) is final
JITTER = 0.2
USER_AGENT = "toolwatch"
# the latest version of each undelivered row
_LOAD = (
    f"SELECT {', '.join(COLUMNS)} FROM (SELECT * FROM alert_outbox ORDER BY key, target, version DESC"
    " LIMIT 1 BY key, target) WHERE status = {status:String}"
)

Slot = tuple[str, NotifyTarget]  # (alert id, target): the unit of ordering


def backoff(attempts: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt."""
    delay = min(cap, base * 2.0 ** min(max(attempts - 1, 0), 60))
    return delay * (1 - JITTER + 2 * JITTER * rand())


@dataclass(frozen=True)
class Delivery:
    """One outbox row as held in memory. ``due`` is not stored: after a restart every row is due at once."""

    key: str
    target: NotifyTarget
    alert_id: str
    state: AlertState
    payload: str
    created_at: float  # seconds since the epoch, by the notifier's clock
    attempts: int = 0
    last_error: str = ""
    status: DeliveryStatus = "pending"
    version: int = 1
    due: float = 0.0

    @property
    def order(self) -> tuple[int, float]:
        """Creation order within an alert: its version, then the time."""
        version = self.key.rpartition(".")[2]
        return (int(version) if version.isdigit() else 0, self.created_at)

    def row(self) -> list[Any]:
        created = dt.datetime.fromtimestamp(self.created_at, dt.UTC)
        return [*(getattr(self, c) for c in COLUMNS[:5]), created, *(getattr(self, c) for c in COLUMNS[6:])]


def webhook_body(key: str, alert: Alert, sent_at: float) -> dict[str, Any]:
    """The generic webhook's body, also stored as the outbox row's payload (``sent_at`` is set anew on
    every attempt)."""
    return {"idempotency_key": key, "event": f"alert.{alert.state}", "sent_at": _iso(sent_at), "alert": alert.public()}


def summary(alert: dict[str, Any]) -> str:
    """One line about an alert object (``Alert.public()``), with Slack's emoji shortcodes."""
    agent = alert.get("agent") or "(any)"
    metric = str(alert.get("metric") or "")
    before, after = _figure(metric, alert.get("before")), _figure(metric, alert.get("after"))
    model = alert.get("new_model") or alert.get("old_model") or "all models"
    n_before, n_after = alert.get("n_before"), alert.get("n_after")
    kind = alert.get("kind")
    if kind == "switch_regression":
        switch = f"{alert.get('old_model')} → {alert.get('new_model')}"
        change = f"{metric} {before} → {after} (n {n_before}/{n_after})"
        what = f"Regression on agent {agent} after switch {switch}: {change}"
    elif kind == "threshold":  # before is the rule's threshold, after the observed rate
        what = f"Threshold exceeded on agent {agent} ({model}): {metric} {after} above {before} (n {n_after})"
    else:
        what = f"Drift on agent {agent} ({model}): {metric} {before} → {after} (n {n_before}/{n_after})"
    if alert.get("state") == "resolved":
        return f":white_check_mark: Resolved: {what}"
    return f":rotating_light: {what}"


def slack_body(payload: dict[str, Any], public_url: str = "") -> dict[str, Any]:
    """A Slack incoming-webhook message for a generic webhook body: ``text`` for notifications and clients
    without blocks, a section and a context block with the detail and links."""
    alert: dict[str, Any] = payload["alert"]
    line = _escape(summary(alert))
    examples = alert.get("examples") or []
    base = public_url.rstrip("/")
    links = []
    if examples and str(examples[0]).startswith(("http://", "https://")):  # under public_url already
        links.append(f"<{examples[0]}|first example>")
    elif examples:
        links.append(f"first example: `{_escape(str(examples[0]))}`")
    if base:
        links.append(f"<{base}/_toolwatch/|dashboard>")
    context = [_escape(str(alert.get("detail") or ""))[:1000], *links, f"key `{payload['idempotency_key']}`"]
    return {
        "text": " · ".join([line, *links]),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": line}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(c for c in context if c)}]},
        ],
    }


class Notifier:
    """The outbox in memory (undelivered rows, a queue per alert and target) and its delivery. ``enqueue``
    may be called from any thread; ``run`` and ``drain`` run on an event loop."""

    def __init__(
        self,
        settings: Settings,
        store: StoreHandle,
        *,
        clock: Callable[[], float] = time.time,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.timeout = timeout
        urls: dict[NotifyTarget, str] = {"webhook": settings.alert_webhook_url, "slack": settings.alert_slack_url}
        self._urls = {target: url for target, url in urls.items() if url}
        self._lock = threading.Lock()
        self._queues: dict[Slot, deque[Delivery]] = {}
        self._busy: set[Slot] = set()  # slots with an attempt under way
        self._finished: set[tuple[str, NotifyTarget]] = set()  # delivered or given up here: never loaded again
        self._loaded = False
        self._wakes: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @property
    def targets(self) -> tuple[NotifyTarget, ...]:
        return tuple(self._urls)

    def load(self) -> None:
        """Take up the rows not delivered before a restart (for the targets configured now)."""
        rows = self.store.run(lambda c: c.query(_LOAD, parameters={"status": "pending"}).result_rows)
        skipped = 0
        with self._lock:
            for row in rows:
                data = dict(zip(COLUMNS, row, strict=True))
                if data["target"] not in self._urls:
                    skipped += 1
                    continue
                created = data["created_at"].replace(tzinfo=data["created_at"].tzinfo or dt.UTC)  # naive: UTC
                self._add(Delivery(**{**data, "created_at": created.timestamp()}))
        if skipped:
            log.warning("%d alert notification(s) are for targets no longer configured; kept undelivered", skipped)
        self._loaded = True
        self._poke()

    def enqueue(self, alert: Alert, silenced: bool) -> list[str]:
        """Record one notification of this state change per target (silenced ones are recorded, never sent)
        and return the key of each row created: [] when none is configured or the change was enqueued before."""
        if not self._urls:
            return []
        key, now = f"{alert.id}.{alert.version}", self.clock()
        payload = orjson.dumps(webhook_body(key, alert, now)).decode()
        status: DeliveryStatus = "silenced" if silenced else "pending"
        new = [Delivery(key, t, alert.id, alert.state, payload, now, status=status) for t in self._urls]
        with self._lock:
            new = [d for d in new if not self._holds(d) and (d.key, d.target) not in self._finished]
        try:
            new = self.store.run(lambda c: _insert_new(c, new))
        except Exception as e:  # noqa: BLE001 - the store is away: deliver anyway, a later version records the row
            log.error("alert notification %s could not be recorded (%s); it is kept in memory only", key, e)
        with self._lock:
            for d in new:
                if d.status == "pending":
                    self._add(d)
        self._poke()
        return [d.key for d in new]

    def pending(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._queues.values())

    async def run(self) -> None:
        """Deliver each notification when it is due, until cancelled. Until ``load`` has succeeded (the store
        may be away at start) it is tried again every ``RELOAD_EVERY`` seconds."""
        loading = None if self._loaded else asyncio.create_task(self._load_until_done())
        try:
            await self._pump(until_idle=False)
        finally:
            if loading is not None:
                loading.cancel()
                await asyncio.gather(loading, return_exceptions=True)

    async def drain(self, timeout: float) -> None:
        """Deliver what is due now (and what follows it in its queue), for at most ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._pump(until_idle=True)
        except TimeoutError:
            log.warning("%d alert notification(s) still undelivered after %.1f s", self.pending(), timeout)

    def _holds(self, d: Delivery) -> bool:  # the caller holds self._lock
        return any(x.key == d.key for x in self._queues.get((d.alert_id, d.target), ()))

    def _add(self, d: Delivery) -> None:  # the caller holds self._lock
        if self._holds(d) or (d.key, d.target) in self._finished:
            return
        queue = self._queues.setdefault((d.alert_id, d.target), deque())
        at = len(queue)
        while at > 0 and queue[at - 1].order > d.order:
            at -= 1
        queue.insert(at, d)

    def _take_due(self, now: float) -> list[Delivery]:
        with self._lock:
            due = [q[0] for slot, q in self._queues.items() if q and slot not in self._busy and q[0].due <= now]
            self._busy.update((d.alert_id, d.target) for d in due)
            return due

    def _next_due(self) -> float | None:
        with self._lock:
            return min((q[0].due for s, q in self._queues.items() if q and s not in self._busy), default=None)

    def _poke(self) -> None:
        for loop, wake in list(self._wakes):
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(wake.set)

    async def _pump(self, until_idle: bool) -> None:
        wake = asyncio.Event()
        entry = (asyncio.get_running_loop(), wake)
        self._wakes.append(entry)
        tasks: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            wake.set()

        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
                try:
                    while True:
                        wake.clear()
                        for d in self._take_due(self.clock()):
                            task = asyncio.create_task(self._deliver(session, d))
                            tasks.add(task)
                            task.add_done_callback(finished)
                        upcoming = self._next_due()
                        if upcoming is not None and upcoming <= self.clock():
                            continue
                        if until_idle and not tasks:
                            return
                        # a jump of the wall clock delays nothing by more than a minute
                        delay = None if until_idle or upcoming is None else min(60.0, upcoming - self.clock())
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(delay):
                                await wake.wait()
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._wakes.remove(entry)

    async def _deliver(self, session: aiohttp.ClientSession, d: Delivery) -> None:
        slot: Slot = (d.alert_id, d.target)
        try:
            error, refused = await self._attempt(session, d)
            now, attempts = self.clock(), d.attempts + 1
            if error is None:
                done = replace(d, attempts=attempts, status="delivered", version=d.version + 1)
            else:
                final = now - d.created_at >= RETRY_FOR or (refused and attempts >= PERMANENT_AFTER)
                wait = backoff(attempts, self.backoff_base, self.backoff_cap)
                status: DeliveryStatus = "failed" if final else "pending"
                done = replace(
                    d, attempts=attempts, last_error=error, status=status, version=d.version + 1, due=now + wait
                )
                if final:
                    msg = "alert notification %s to %s given up after %d attempts: %s"
                    log.error(msg, d.key, d.target, attempts, error)
                else:
                    msg = "alert notification %s to %s failed (attempt %d, next in %.1f s): %s"
                    log.warning(msg, d.key, d.target, attempts, wait, error)
            with self._lock:
                queue = self._queues[slot]
                at = next(i for i, x in enumerate(queue) if x.key == d.key)
                if done.status == "pending":
                    queue[at] = done
                else:
                    del queue[at]
                    self._finished.add((d.key, d.target))
                    if not queue:
                        del self._queues[slot]
            try:
                await asyncio.to_thread(self.store.run, lambda c: _insert(c, [done]))
            except Exception as e:  # noqa: BLE001 - at least once: unrecorded, it is sent again after a restart
                log.error("alert notification %s to %s: could not record %s (%s)", d.key, d.target, done.status, e)
        finally:
            with self._lock:
                self._busy.discard(slot)

    async def _load_until_done(self) -> None:
        while not self._loaded:
            try:
                await asyncio.to_thread(self.load)
            except Exception as e:  # noqa: BLE001 - the store is away: its rows wait there
                log.warning("could not load undelivered alert notifications (%s); next try in %.0f s", e, RELOAD_EVERY)
                await asyncio.sleep(RELOAD_EVERY)

    async def _attempt(self, session: aiohttp.ClientSession, d: Delivery) -> tuple[str | None, bool]:
        """Send once: (None, _) when delivered, else (what went wrong, whether the receiver refused it)."""
        url = self._urls[d.target]
        payload = orjson.loads(d.payload)
        payload["sent_at"] = _iso(self.clock())
        body = slack_body(payload, self.settings.public_url) if d.target == "slack" else payload
        headers = {"Content-Type": "application/json", "Idempotency-Key": d.key, "User-Agent": USER_AGENT}
        try:
            async with session.post(url, data=orjson.dumps(body), headers=headers, allow_redirects=False) as response:
                if 200 <= response.status < 300:
                    return None, False
                text = (await response.content.read(300)).decode(errors="replace").strip()
                refused = 400 <= response.status < 500 and response.status not in (408, 429)
                return f"HTTP {response.status} {text}".strip(), refused
        except Exception as e:  # noqa: BLE001 - any failure to deliver is one failed attempt
            # the URL's path can be a secret (Slack's is): never in the log or the store
            return f"{type(e).__name__}: {e}".replace(url, d.target)[:300], False


def _insert_new(client: Client, deliveries: list[Delivery]) -> list[Delivery]:
    """Insert the rows whose (key, target) the outbox does not have yet; return them."""
    if not deliveries:
        return []
    known = client.query(
        "SELECT DISTINCT target FROM alert_outbox WHERE key = {key:String}", parameters={"key": deliveries[0].key}
    ).result_rows
    new = [d for d in deliveries if d.target not in {r[0] for r in known}]
    _insert(client, new)
    return new


def _insert(client: Client, deliveries: list[Delivery]) -> None:
    if deliveries:
        client.insert("alert_outbox", [d.row() for d in deliveries], column_names=list(COLUMNS))


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


def _figure(metric: str, value: Any) -> str:
    if not isinstance(value, int | float):
        return "?"
    if "rate" in metric and 0 <= value <= 1:
        return f"{value * 100:.1f}%"
    return f"{value:.4g}"


def _escape(text: str) -> str:
    """Slack's mrkdwn escaping: & < > are the only control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
