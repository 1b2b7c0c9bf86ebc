"""The regression alerts' detection delay and false-alarm rate, at full counts (the README's figures).

Drives the evaluator's own decision function through ``toolwatch.alerts.simulate`` with the default
settings: sessions arrive one every 10 s and the test runs every 30 s (the default ``alert_interval``),
over a horizon of ``alert_horizon_sessions`` (5000) sessions on the new model, against a baseline of 2000
sessions on the old one. Fixed seeds.

    python bench/alert_simulation.py                     # 200 worse seeds, 2000 equal seeds
    python bench/alert_simulation.py --worse 50 --equal 200
"""

from __future__ import annotations

import argparse
import time

from toolwatch.alerts.method import Design
from toolwatch.alerts.simulate import BASE_RATES, Scenario, run, summarise
from toolwatch.schemas.settings import load_settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worse", type=int, default=200)
    ap.add_argument("--equal", type=int, default=2000)
    args = ap.parse_args()
    s = load_settings(None, environ={}, overrides={})
    design = Design(
        s.alert_alpha, s.alert_min_sessions, s.alert_min_effect, s.alert_min_relative_effect, s.alert_horizon_sessions
    )
    cases = [
        ("2% -> 6% malformed sessions", Scenario(after=(0.06, *BASE_RATES[1:])), args.worse, 0),
        ("2% -> 12% malformed sessions", Scenario(after=(0.12, *BASE_RATES[1:])), args.worse, 50_000),
        ("2% -> 12%, 150 old sessions", Scenario(after=(0.12, *BASE_RATES[1:]), n_before=150), args.worse, 60_000),
        ("equally good model", Scenario(), args.equal, 10_000),
    ]
    print(f"design: {design.describe()}; checkpoints {design.checkpoints}")
    print(f"baseline rates (malformed, tool_error, cascade, failed): {BASE_RATES}\n")
    print("| scenario | seeds | alerted | median delay (sessions) | p95 delay | alerted by 150 | rate, 95% upper |")
    print("|---|---|---|---|---|---|---|")
    for name, scenario, seeds, first in cases:
        started = time.perf_counter()
        delays = [run(design, scenario, first + i) for i in range(seeds)]
        sm = summarise(delays)
        by150 = sum(1 for d in delays if d is not None and d <= 150)
        med = "-" if sm.median is None else f"{sm.median:.0f}"
        p95 = "-" if sm.p95 is None else f"{sm.p95:.0f}"
        print(
            f"| {name} | {sm.runs} | {sm.alerts} | {med} | {p95} | {by150} | "
            f"{sm.rate:.2%}, {sm.upper95():.2%} |  ({time.perf_counter() - started:.0f} s)"
        )


if __name__ == "__main__":
    main()
