"""The jobs stage: what runs in the recorder process besides recording, on timers and after each stored
batch: Prometheus metrics (``metrics.py``), OpenTelemetry span export (``otel.py``), and alert evaluation.
It sits above the analyzers and the recorder, and the recorder's process wires it in (``Jobs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

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
