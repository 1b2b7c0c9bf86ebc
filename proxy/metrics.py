"""The proxy's own Prometheus series, labelled by ``upstream`` only: a few observations per request, never a
body parsed. ``/metrics`` serves them followed by the recorder's (the series with a ``model`` label).

With several proxy processes (``serve --workers N``), each worker's values live in prometheus_client's
multiprocess files in one folder (``shared``; the process starts with ``PROMETHEUS_MULTIPROC_DIR`` naming
it), and every worker's ``/metrics`` sums the files of all of them: the same totals whichever answers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
DROPPED = "toolwatch_records_dropped"
DROPPED_HELP = "Exchanges not recorded: the spool cap, or a disk that refused the write"


class _Dropped(Collector):
    def __init__(self, count: Callable[[], int]) -> None:
        self.count = count

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(DROPPED, DROPPED_HELP, value=self.count())


class ProxyMetrics:
    def __init__(self, upstreams: list[str], dropped: Callable[[], int], shared: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.overhead = Histogram(
            "toolwatch_proxy_overhead_seconds",
            "Time the proxy itself added before the response headers left (the toolwatch-overhead-ms header)",
            ["upstream"],
            buckets=OVERHEAD_BUCKETS,
            registry=self.registry,
        )
        self._by_upstream = {name: self.overhead.labels(name) for name in upstreams}
        self.dropped = dropped
        self._dropped_counted = 0
        self._dropped_counter: Counter | None = None
        self._exposed = self.registry
        if shared is None:
            self.registry.register(_Dropped(dropped))
        else:  # a callable cannot be summed across processes: the count goes to this worker's file
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR") != str(shared):
                raise RuntimeError("shared proxy metrics need PROMETHEUS_MULTIPROC_DIR set at process start")
            self._dropped_counter = Counter(DROPPED, DROPPED_HELP, registry=self.registry)
            self._exposed = CollectorRegistry(auto_describe=True)
            MultiProcessCollector(self._exposed, path=str(shared))  # type: ignore[no-untyped-call]

    def observe_overhead(self, upstream: str, seconds: float) -> None:
        child = self._by_upstream.get(upstream)
        if child is not None:
            child.observe(seconds)

    def not_recorded(self) -> None:
        """An exchange was not appended to the spool: with shared files, count what ``dropped`` added."""
        if self._dropped_counter is not None:
            total = self.dropped()
            if total > self._dropped_counted:
                self._dropped_counter.inc(total - self._dropped_counted)
                self._dropped_counted = total

    def exposition(self) -> bytes:
        return generate_latest(self._exposed)
