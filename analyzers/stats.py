"""Two-proportion statistics for comparing models: Fisher's exact test and score intervals. Pure.

Computed here (a few lines with ``math.lgamma``) rather than importing SciPy, which would add a large
dependency to the recorder for three functions.
"""

from __future__ import annotations

import math

Z95 = 1.959964


def fisher_greater(x_after: int, n_after: int, x_before: int, n_before: int) -> float:
    """One-sided Fisher exact p-value: the chance, given both margins, that the after side holds at least
    ``x_after`` of the sessions with the indicator (hypergeometric upper tail)."""
    total, hits = n_after + n_before, x_after + x_before
    if n_after == 0 or hits == 0:
        return 1.0
    if x_after > min(hits, n_after):
        return 0.0
    log_all = _lcomb(total, n_after)
    mode = (n_after + 1) * (hits + 1) // (total + 2)
    terms: list[float] = []
    for k in range(x_after, min(hits, n_after) + 1):
        t = _lcomb(hits, k) + _lcomb(total - hits, n_after - k) - log_all
        terms.append(t)
        if k > mode and t < terms[0] - 40 and t < max(terms) - 40:
            break  # past the mode the terms only shrink: the rest adds less than e^-40 of the sum
    peak = max(terms)
    return min(1.0, math.exp(peak) * sum(math.exp(t - peak) for t in terms))


def _lcomb(n: int, k: int) -> float:
    if k < 0 or k > n:
        return -math.inf
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def difference_interval(
    x_after: int, n_after: int, x_before: int, n_before: int, z: float = Z95
) -> tuple[float, float]:
    """95 % interval for after - before: Newcombe's hybrid score interval from two Wilson intervals."""
    l1, u1 = wilson(x_after, n_after, z)
    l0, u0 = wilson(x_before, n_before, z)
    p1 = x_after / n_after if n_after else 0.0
    p0 = x_before / n_before if n_before else 0.0
    d = p1 - p0
    low = d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return max(-1.0, low), min(1.0, high)


def wilson(x: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
