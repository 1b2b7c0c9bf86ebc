"""Prometheus metrics counted by the recorder, which has parsed every exchange: the series with a ``model``
label. The proxy serves them on its ``/metrics`` next to its own (``proxy/metrics.py``).

Counters move when a batch is stored, so their totals equal the rows in the store. Cardinality is
bounded: a model gets its own series only after a 2xx answer, and at most ``metrics_max_models`` models and
``metrics_max_tools`` tools get one; the rest count under ``other``, so no request-supplied name can grow
the series without bound. The session gauges come from the analyzers on a timer (``session_gauges``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import generate_latest

from toolwatch.recorder.links import Lru
from toolwatch.store.sink import Batch

log = logging.getLogger("toolwatch.metrics")
# no *_created series: they double the series count and nothing here reads them
disable_created_metrics()  # type: ignore[no-untyped-call]
OTHER = "other"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
TTFB_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
SESSION_WINDOWS = {"1h": "1h", "24h": "24h"}


class Capped:
    """Label values admitted up to a bound; the rest are ``other``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.admitted: set[str] = set()

    def label(self, value: str, admit: bool = True) -> str:
        if value in self.admitted:
            return value
        if admit and value and len(self.admitted) < self.limit:
            self.admitted.add(value)
            return value
        return OTHER


class RecordingMetrics:
    def __init__(self, max_models: int = 50, max_tools: int = 200) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.models = Capped(max_models)
        self.tools = Capped(max_tools)
        self.llm_calls = Counter(
            "toolwatch_llm_calls", "LLM calls recorded", ["model", "upstream", "api", "outcome"], registry=r
        )
        self.tool_calls = Counter(
            "toolwatch_tool_calls", "Tool calls emitted", ["model", "upstream", "tool"], registry=r
        )
        self.malformed = Counter(
            "toolwatch_malformed_tool_calls", "Malformed tool calls, by kind", ["model", "upstream", "kind"], registry=r
        )
        self.tool_results = Counter(
            "toolwatch_tool_results",
            "Tool results carried back, ok or error, counted when the result arrives",
            ["model", "upstream", "tool", "outcome"],
            registry=r,
        )
        self.tokens = Counter("toolwatch_tokens", "Tokens by type", ["model", "upstream", "type"], registry=r)
        self.store_errors = Counter("toolwatch_store_errors", "Batches the store failed to take", registry=r)
        self.latency = Histogram(
            "toolwatch_upstream_latency_seconds",
            "Request start to last response byte",
            ["model", "upstream"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttfb = Histogram(
            "toolwatch_time_to_first_byte_seconds",
            "Request start to first response byte",
            ["model", "upstream"],
            buckets=TTFB_BUCKETS,
            registry=r,
        )
        self.spool_bytes = Gauge("toolwatch_spool_bytes", "Bytes in the spool", registry=r)
        self.lag = Gauge(
            "toolwatch_recorder_lag_seconds", "How long the recorder has had unstored exchanges", registry=r
        )
        self.dead_letters = Gauge("toolwatch_dead_letters", "Dead letters waiting to be looked at", registry=r)
        self.success = Gauge(
            "toolwatch_session_success_ratio",
            "Successful sessions / closed sessions, over a rolling window",
            ["model", "window"],
            registry=r,
        )
        self.cascade = Gauge(
            "toolwatch_cascade_ratio",
            "Cascading sessions / closed sessions, over a rolling window",
            ["model", "window"],
            registry=r,
        )
        self.alerts_open = Gauge("toolwatch_alerts_open", "Open regression alerts", ["agent", "kind"], registry=r)
        self._alert_labels: set[tuple[str, str]] = set()
        self._producers: Lru[tuple[str, str], tuple[str, str]] = Lru(200_000)  # tool call id -> (model, tool)
        self._session_labels: dict[str, set[str]] = {}  # window -> models with a session gauge

    def watch(self, spool_bytes: Callable[[], int], lag: Callable[[], float], dead: Callable[[], int]) -> None:
        """Gauges read at scrape time."""
        self.spool_bytes.set_function(spool_bytes)
        self.lag.set_function(lag)
        self.dead_letters.set_function(dead)

    def observe(self, batch: Batch) -> None:
        """Count a batch that the store has just taken."""
        models: dict[Any, str] = {}
        for c in batch.llm_calls:
            model = self.models.label(c.model, admit=200 <= c.status < 300)
            models[c.call_id] = model
            up = c.upstream
            self.llm_calls.labels(model, up, c.api, c.outcome).inc()
            for kind, n in (
                ("input", c.input_tokens),
                ("cache_read", c.cache_read_tokens),
                ("cache_write", c.cache_write_tokens),
                ("output", c.output_tokens),
            ):
                if n:
                    self.tokens.labels(model, up, kind).inc(n)
            if c.endpoint != "other":
                self.latency.labels(model, up).observe(c.latency_ms / 1000.0)
                if c.ttfb_ms is not None:
                    self.ttfb.labels(model, up).observe(c.ttfb_ms / 1000.0)
        for t in batch.tool_calls:
            model = models.get(t.call_id) or self.models.label(t.model, admit=False)
            tool = self.tools.label(t.name)
            self.tool_calls.labels(model, t.upstream, tool).inc()
            if t.malformed_kind:
                self.malformed.labels(model, t.upstream, t.malformed_kind).inc()
            self._producers.put((t.upstream, t.tool_call_id), (model, tool))
        for res in batch.tool_results:
            model, tool = self._producers.get((res.upstream, res.tool_call_id), (OTHER, OTHER))
            self.tool_results.labels(model, res.upstream, tool, "error" if res.error_rule else "ok").inc()

    def failed_write(self) -> None:
        self.store_errors.inc()

    def set_sessions(self, window: str, rows: list[dict[str, Any]]) -> None:
        """The rolling window's figures per model; a model gone from the window loses its series."""
        now: set[str] = set()
        for gauge, field in ((self.success, "session_success_rate"), (self.cascade, "cascade_rate")):
            for row in rows:
                # a model with any answer that was not an HTTP error gets its own series (after a restart
                # too); several models under "other" would overwrite one another's value, so they get none
                answered = (row.get("http_error_rate") or 0) < 1
                model = self.models.label(row["model"], admit=answered)
                if row.get(field) is not None and model != OTHER:
                    gauge.labels(model, window).set(row[field])
                    now.add(model)
        for model in self._session_labels.get(window, set()) - now:
            for gauge in (self.success, self.cascade):
                try:
                    gauge.remove(model, window)
                except KeyError:
                    pass
        self._session_labels[window] = now

    def set_alerts(self, open_counts: dict[tuple[str, str], int]) -> None:
        """Open alerts per agent and kind; a pair with none left goes back to 0 (alert rules read 0)."""
        for labels in self._alert_labels | set(open_counts):
            self.alerts_open.labels(*labels).set(open_counts.get(labels, 0))
        self._alert_labels |= set(open_counts)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


async def session_gauges(
    metrics: RecordingMetrics, report: Callable[[str], list[dict[str, Any]]], interval: float
) -> None:
    """Every ``interval`` seconds, the per-model session figures over each rolling window. ``report(since)``
    runs the analyzers' report (in a worker thread here). Failures are logged; the next round tries again."""
    while True:
        started = time.monotonic()
        for window, since in SESSION_WINDOWS.items():
            try:
                metrics.set_sessions(window, await asyncio.to_thread(report, since))
            except Exception as e:  # noqa: BLE001 - the store may be away; the gauges keep their last values
                log.warning("session gauges for %s not updated: %s", window, e)
        await asyncio.sleep(max(1.0, interval - (time.monotonic() - started)))
