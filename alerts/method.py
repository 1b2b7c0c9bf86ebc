"""The decision function: has a per-session indicator got worse on the new model? Pure; no I/O.

Method: a group-sequential one-sided Fisher exact test with an alpha-spending schedule.

- The test looks at checkpoints of the new side's sample size: ``min_sessions`` (30), then x1.5 each time
  (45, 67, 100, 150, 225, ...) up to ``horizon`` sessions. The recorder evaluates every ``alert_interval``,
  but a look happens only when the new side has crossed its next checkpoint; crossing several at once is
  one look with their budgets added.
- Each look gets a share of the indicator's false-alarm budget ``alpha`` (``WEIGHTS``: most of it between
  45 and 225 sessions, where a real regression shows; a little for every later checkpoint). A look's level
  is the cumulative share minus what earlier looks spent, so a checkpoint skipped for lack of old-side
  sessions passes its budget on. By the union bound, the chance that a test ever alerts when the new model
  is as good as the old is at most ``alpha``, however long it runs and however often it is evaluated.
- At a look, the test alerts when the one-sided Fisher exact p-value (the new side has more sessions with
  the indicator) is at most the look's level, and the worsening is at least ``min_effect`` absolute and
  ``min_relative_effect`` of the old rate, with ``min_sessions`` on each side.

The state between looks (``Looks``) is persisted by the evaluator, so a restart never looks twice.
The statistics (Fisher's test, Wilson and Newcombe intervals) are in ``analyzers/stats.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from toolwatch.analyzers.stats import fisher_greater

# Budget shares of the first checkpoints (30, 45, 67, 100, 150, 225, ...); every later one gets TAIL.
WEIGHTS = (0.02, 0.03, 0.05, 0.10, 0.20, 0.14, 0.11, 0.08, 0.07, 0.06, 0.05, 0.04, 0.035, 0.03, 0.025, 0.02, 0.02)
TAIL = 0.02
GROWTH = 1.5
METHOD = "group-sequential one-sided Fisher exact test, alpha spent over checkpoints x1.5"


@dataclass(frozen=True)
class Design:
    alpha: float = 0.003
    min_sessions: int = 30
    min_effect: float = 0.02
    min_relative_effect: float = 0.25
    horizon: int = 5000
    checkpoints: tuple[int, ...] = field(init=False, repr=False, compare=False)
    cumulative: tuple[float, ...] = field(init=False, repr=False, compare=False)  # budget share up to each

    def __post_init__(self) -> None:
        points = [self.min_sessions]
        while points[-1] < self.horizon:
            points.append(min(self.horizon, max(points[-1] + 1, int(points[-1] * GROWTH))))
        raw = [WEIGHTS[i] if i < len(WEIGHTS) else TAIL for i in range(len(points))]
        total, acc, shares = sum(raw), 0.0, []
        for w in raw:
            acc += w
            shares.append(acc / total)
        object.__setattr__(self, "checkpoints", tuple(points))
        object.__setattr__(self, "cumulative", tuple(shares))

    def describe(self) -> str:
        return (
            f"{METHOD}; alpha {self.alpha:g} per metric, min {self.min_sessions} sessions per side, "
            f"min effect {self.min_effect:g} absolute and {self.min_relative_effect:g} relative"
        )


class Looks(NamedTuple):
    """How far one test has got: checkpoints passed, budget spent, and whether it has alerted."""

    passed: int = 0
    spent: float = 0.0
    decided: bool = False


class Counts(NamedTuple):
    """Sessions with the indicator (x) and sessions (n) before (old model) and after (new model)."""

    x_before: int
    n_before: int
    x_after: int
    n_after: int

    @property
    def before(self) -> float:
        return self.x_before / self.n_before if self.n_before else 0.0

    @property
    def after(self) -> float:
        return self.x_after / self.n_after if self.n_after else 0.0


class Verdict(NamedTuple):
    looks: Looks
    looked: bool  # a checkpoint was crossed and tested at this evaluation
    regressed: bool  # the test alerts (now or at an earlier look)
    p_value: float | None
    level: float


def step(design: Design, looks: Looks, counts: Counts) -> Verdict:
    """One evaluation of one test. Once a test has alerted it stays decided."""
    if looks.decided:
        return Verdict(looks, False, True, None, 0.0)
    points = design.checkpoints
    passed = looks.passed
    if passed >= len(points) or points[passed] > counts.n_after:
        return Verdict(looks, False, False, None, 0.0)  # no checkpoint crossed since the last look
    while passed < len(points) and points[passed] <= counts.n_after:
        passed += 1
    cumulative = design.cumulative
    if counts.n_before < design.min_sessions or counts.n_after < design.min_sessions:
        return Verdict(looks._replace(passed=passed), False, False, None, 0.0)  # budget passes on
    level = max(0.0, design.alpha * cumulative[passed - 1] - looks.spent)
    p = fisher_greater(counts.x_after, counts.n_after, counts.x_before, counts.n_before)
    regressed = p <= level and worse_enough(design, counts)
    return Verdict(Looks(passed, looks.spent + level, regressed), True, regressed, p, level)


def worse_enough(design: Design, counts: Counts) -> bool:
    effect = counts.after - counts.before
    return effect > 0 and effect >= max(design.min_effect, design.min_relative_effect * counts.before)
