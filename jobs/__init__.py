"""The jobs stage: what runs in the recorder process besides recording, on timers and after each stored
batch: Prometheus metrics (``metrics.py``), OpenTelemetry span export (``otel.py``), and alert evaluation
with its notifications (the alerts stage).
It sits above the analyzers and the recorder, and the recorder's process wires it in (``Jobs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from toolwatch.alerts.evaluate import Evaluator
from toolwatch.alerts.notify import Notifier
from toolwatch.analyzers.params import analyzer_params
from toolwatch.analyzers.views import Context, view
from toolwatch.jobs import otel
from toolwatch.jobs.metrics import RecordingMetrics, session_gauges
from toolwatch.recorder.loop import Recorder
from toolwatch.schemas.settings import Settings
from toolwatch.spool.deadletter import DeadLetters
from toolwatch.spool.segments import spool_bytes
from toolwatch.store.handle import StoreHandle

log = logging.getLogger("toolwatch.jobs")
EXPIRE_EVERY = 30.0


class Jobs:
    def __init__(self, settings: Settings, recorder: Recorder, store: StoreHandle, ctx: Context) -> None:
        self.settings = settings
        self.store = store
        self.ctx = ctx
        self.metrics = RecordingMetrics(settings.metrics_max_models, settings.metrics_max_tools)
        recorder.on_stored.append(self.metrics.observe)
        recorder.on_write_error.append(self.metrics.failed_write)
        letters = DeadLetters(settings.spool_path)
        self.metrics.watch(lambda: spool_bytes(settings.spool_path), recorder.lag_seconds, letters.count)
        self.spans: otel.SpanExport | None = None
        if otel.enabled(settings):
            self.spans = otel.SpanExport(settings, otel.exporter_for(settings))
            recorder.on_stored.append(self.spans.observe)
        self.evaluator: Evaluator | None = None
        self.notifier: Notifier | None = None
        if settings.evaluates_alerts:
            self.evaluator = Evaluator(settings, store)
            self.notifier = Notifier(settings, store)
        self._tasks: list[asyncio.Task[None]] = []

    def report(self, since: str) -> list[dict[str, Any]]:
        params = analyzer_params("report", {"since": since})
        rows: list[dict[str, Any]] = self.store.run(lambda c: view(c, "report", params, self.ctx))
        return rows

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(
            loop.create_task(session_gauges(self.metrics, self.report, self.settings.metrics_interval), name="gauges")
        )
        if self.spans is not None:
            self._tasks.append(loop.create_task(self._expire(), name="span-expiry"))
        if self.evaluator is not None and self.notifier is not None:
            self._tasks.append(loop.create_task(self._alerts(self.evaluator, self.notifier), name="alerts"))
            self._tasks.append(loop.create_task(self.notifier.run(), name="notify"))

    async def _alerts(self, evaluator: Evaluator, notifier: Notifier) -> None:
        """Evaluate every ``alert_interval`` (the first at once); hand every state change to the notifier."""
        try:
            await asyncio.to_thread(notifier.load)
        except Exception:  # noqa: BLE001 - the store may be away; deliveries wait in it until it is back
            log.exception("could not load undelivered notifications")
        while True:
            started = time.monotonic()
            await self.evaluate_once(evaluator, notifier)
            await asyncio.sleep(max(1.0, self.settings.alert_interval - (time.monotonic() - started)))

    async def evaluate_once(self, evaluator: Evaluator, notifier: Notifier) -> None:
        try:
            changes = await asyncio.to_thread(evaluator.evaluate)
        except Exception:  # noqa: BLE001 - logged; the next round tries again
            log.exception("alert evaluation failed")
            return
        for change in changes:
            if change.notify:
                try:
                    await asyncio.to_thread(notifier.enqueue, change.alert, change.silenced)
                except Exception:  # noqa: BLE001
                    log.exception("could not queue the notification of alert %s", change.alert.id)
        self.metrics.set_alerts(evaluator.open_counts())

    async def _expire(self) -> None:
        assert self.spans is not None
        while True:
            await asyncio.sleep(EXPIRE_EVERY)
            try:
                self.spans.expire()
            except Exception:  # noqa: BLE001
                log.exception("span expiry failed")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.spans is not None:
            await asyncio.to_thread(self.spans.shutdown)
