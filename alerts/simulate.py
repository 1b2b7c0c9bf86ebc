"""A simulation of switches, driving the evaluator's own decision function (``method.step``) exactly as the
recorder does: sessions arrive one every ``session_every`` seconds and the test is evaluated every
``alert_interval`` seconds, for every indicator, until the new model has ``horizon`` sessions.

The old model's baseline is ``n_before`` sessions. Indicators are drawn independently per session with the
given rates. Used by ``tests/alerts/test_simulation.py`` (reduced counts) and ``bench/alert_simulation.py``
(the full counts the README reports). Fixed seeds make every run reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy

from toolwatch.alerts.method import Counts, Design, Looks, step

# malformed, tool_error, cascade, failed: rates per session on a fairly reliable agent
BASE_RATES = (0.02, 0.10, 0.10, 0.15)


@dataclass(frozen=True)
class Scenario:
    before: Sequence[float] = BASE_RATES
    after: Sequence[float] = BASE_RATES
    n_before: int = 2000
    horizon: int | None = None  # default: the design's horizon
    interval: float = 30.0  # seconds between evaluations (alert_interval)
    session_every: float = 10.0  # seconds between the new model's sessions


def run(design: Design, scenario: Scenario, seed: int) -> int | None:
    """The new model's session count at the evaluation that alerted, or None if it never did."""
    rng = numpy.random.default_rng(seed)
    x_before = [int(rng.binomial(scenario.n_before, p)) for p in scenario.before]
    horizon = scenario.horizon or design.horizon
    per_eval = max(1, round(scenario.interval / scenario.session_every))
    sizes = numpy.full(-(-horizon // per_eval), per_eval)
    sizes[-1] = horizon - per_eval * (len(sizes) - 1)
    # the new model's sessions with each indicator, cumulated at every evaluation
    cumulated = numpy.cumsum(rng.binomial(sizes[:, None], numpy.asarray(scenario.after)[None, :]), axis=0).tolist()
    arrived = numpy.cumsum(sizes).tolist()
    looks = [Looks() for _ in scenario.after]
    for n, x_after in zip(arrived, cumulated, strict=True):
        for i in range(len(looks)):
            verdict = step(design, looks[i], Counts(x_before[i], scenario.n_before, x_after[i], n))
            looks[i] = verdict.looks
            if verdict.regressed:
                return int(n)
    return None


@dataclass(frozen=True)
class Summary:
    runs: int
    alerts: int
    median: float | None  # sessions on the new model until the alert, over the runs that alerted
    p95: float | None

    @property
    def rate(self) -> float:
        return self.alerts / self.runs

    def upper95(self) -> float:
        """One-sided 95 % Clopper-Pearson upper bound of the alert rate."""
        return clopper_pearson_upper(self.alerts, self.runs)


def summarise(delays: list[int | None]) -> Summary:
    hit = sorted(d for d in delays if d is not None)
    return Summary(len(delays), len(hit), _quantile(hit, 0.5), _quantile(hit, 0.95))


def _quantile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    pos = q * (len(values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """The p with P(X <= k | n, p) = 1 - confidence, found by bisection on the binomial tail."""
    if k >= n:
        return 1.0
    lo, hi = k / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if _binom_cdf(k, n, mid) > 1 - confidence:
            lo = mid
        else:
            hi = mid
    return hi


def _binom_cdf(k: int, n: int, p: float) -> float:
    total = 0.0
    for i in range(k + 1):
        total += math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)) * p**i * (1 - p) ** (n - i)
    return total
