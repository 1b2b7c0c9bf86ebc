"""The proxy's own Prometheus series, labelled by ``upstream`` only: a few observations per request, never a
body parsed. ``/metrics`` serves them followed by the recorder's (the series with a ``model`` label)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class _Dropped(Collector):
    def __init__(self, count: Callable[[], int]) -> None:
        self.count = count

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "toolwatch_records_dropped",
            "Exchanges not recorded: the spool cap, or a disk that refused the write",
            value=self.count(),
        )


class ProxyMetrics:
    def __init__(self, upstreams: list[str], dropped: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.overhead = Histogram(
            "toolwatch_proxy_overhead_seconds",
            "Time the proxy itself added before the response headers left (the toolwatch-overhead-ms header)",
            ["upstream"],
            buckets=OVERHEAD_BUCKETS,
            registry=self.registry,
        )
        self._by_upstream = {name: self.overhead.labels(name) for name in upstreams}
        self.registry.register(_Dropped(dropped))

    def observe_overhead(self, upstream: str, seconds: float) -> None:
        child = self._by_upstream.get(upstream)
        if child is not None:
            child.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
