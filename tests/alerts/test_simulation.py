"""The decision function, simulated as the recorder drives it (``alerts/simulate.py``): reduced counts of
the benchmark in ``bench/alert_simulation.py``, with fixed seeds.

- A switch from 2 % to 6 % of sessions with a malformed call: 50 seeds, every one alerts.
- A switch to an equally good model: 200 seeds, at most 2 false alarms.
- The spending schedule never spends more than alpha, whatever the counts (Hypothesis).
- Fisher's exact test agrees with a brute-force enumeration.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from toolwatch.alerts.method import Counts, Design, Looks, step
from toolwatch.alerts.simulate import BASE_RATES, Scenario, run, summarise
from toolwatch.analyzers.stats import difference_interval, fisher_greater, wilson
from toolwatch.schemas.settings import load_settings

WORSE = Scenario(after=(0.06, *BASE_RATES[1:]))
EQUAL = Scenario()


def default_design() -> Design:
    s = load_settings(None, environ={}, overrides={})
    return Design(s.alert_alpha, s.alert_min_sessions, s.alert_min_effect, s.alert_min_relative_effect,
                  s.alert_horizon_sessions)  # fmt: skip


def test_a_worse_model_always_alerts() -> None:
    delays = [run(default_design(), WORSE, seed) for seed in range(50)]
    summary = summarise(delays)
    assert summary.alerts == 50, delays
    assert summary.median is not None and summary.median < 1000


def test_an_equally_good_model_rarely_alerts() -> None:
    delays = [run(default_design(), EQUAL, 10_000 + seed) for seed in range(200)]
    assert summarise(delays).alerts <= 2


def test_a_large_regression_alerts_by_150_sessions_in_the_end_to_end_case() -> None:
    # the end-to-end test's counts: 3 of 150 before, 18 of 150 after, looked at once at 150
    verdict = step(default_design(), Looks(), Counts(3, 150, 18, 150))
    assert verdict.regressed and verdict.looked
    # and looked at every checkpoint on the way (30, 45, 67, 100), it still decides at 150
    looks = Looks()
    for n in (30, 45, 67, 100):
        v = step(default_design(), looks, Counts(3, 150, round(n * 0.12), n))
        looks = v.looks
    assert step(default_design(), looks, Counts(3, 150, 18, 150)).regressed


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(0, 40)), min_size=1, max_size=40))
def test_the_budget_spent_never_exceeds_alpha(steps: list[tuple[int, int]]) -> None:
    design = Design(horizon=2000)
    looks, n = Looks(), 0
    for grow, hits in steps:
        n += grow
        looks = step(design, looks, Counts(10, 500, min(hits, n), n)).looks
        assert looks.spent <= design.alpha * (1 + 1e-9)
    assert looks.passed <= len(design.checkpoints)


def brute_fisher(x_after: int, n_after: int, x_before: int, n_before: int) -> float:
    hits, total = x_after + x_before, n_after + n_before
    return sum(
        math.comb(hits, k) * math.comb(total - hits, n_after - k) for k in range(x_after, min(hits, n_after) + 1)
    ) / math.comb(total, n_after)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.integers(1, 60), st.integers(1, 60), st.data())
def test_fisher_matches_enumeration(n_after: int, n_before: int, data: st.DataObject) -> None:
    x_after = data.draw(st.integers(0, n_after))
    x_before = data.draw(st.integers(0, n_before))
    expected = brute_fisher(x_after, n_after, x_before, n_before) if x_after + x_before else 1.0
    assert math.isclose(fisher_greater(x_after, n_after, x_before, n_before), expected, rel_tol=1e-9, abs_tol=1e-12)


def test_intervals_hold_the_estimate() -> None:
    low, high = wilson(3, 150)
    assert low < 3 / 150 < high and 0 <= low and high <= 1
    low, high = difference_interval(18, 150, 3, 150)
    assert low < 0.10 < high and low > 0  # the e2e regression's interval excludes no change
