"""Figures for ``proxy_overhead.py``: percentiles, the medians over rounds, and the markdown report."""

from __future__ import annotations

import argparse
import statistics
from typing import Any

TARGETS = ("direct", "bare", "toolwatch")
# From the issue: toolwatch's overhead at most 1.5x the bare passthrough's, its throughput at least 0.8x.
LIMITS = {"overhead_p50": 1.5, "overhead_p99": 1.5, "throughput": 0.8}


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


def summarise(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Medians over rounds; overheads are paired with the direct run of the same round."""
    med = statistics.median
    out: dict[str, Any] = {}
    for t in TARGETS:
        runs = [r[t] for r in rounds]
        keys = ("p50_ms", "p90_ms", "p99_ms", "throughput_rps", "other_load_cpus")
        row = {k: med(run[k] for run in runs) for k in keys}
        row["cpu_us_per_request"] = {
            k: med(run["cpu_us_per_request"][k] for run in runs) for k in runs[0]["cpu_us_per_request"]
        }
        if t != "direct":
            for p in ("p50", "p99"):
                row[f"overhead_{p}_ms"] = med(r[t][f"{p}_ms"] - r["direct"][f"{p}_ms"] for r in rounds)
        out[t] = row
    tw, bare = out["toolwatch"], out["bare"]
    out["ratios"] = {
        "overhead_p50": _ratio(tw["overhead_p50_ms"], bare["overhead_p50_ms"]),
        "overhead_p99": _ratio(tw["overhead_p99_ms"], bare["overhead_p99_ms"]),
        "throughput": tw["throughput_rps"] / bare["throughput_rps"],
        "proxy_cpu": tw["cpu_us_per_request"]["toolwatch"] / bare["cpu_us_per_request"]["bare"],
    }
    return out


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None  # a non-positive bare overhead is noise: no meaningful ratio


def report(summary: dict[str, Any], machine: dict[str, Any], args: argparse.Namespace) -> str:
    mode = "SSE stream" if args.stream else "JSON"
    lines = [
        f"## toolwatch proxy overhead ({mode}, {args.requests} requests x {args.rounds} rounds, "
        f"concurrency {args.concurrency}, request bodies {machine['request_body_bytes'][0]}-"
        f"{machine['request_body_bytes'][1]} bytes, {args.warmup} warm-up requests before each run)",
        "",
        f"machine: {machine['nproc']} CPUs, Python {machine['python']}, {machine['platform']}, "
        f"load average {machine['loadavg_before']:.2f} before the run",
        "",
        "| target | p50 ms | p99 ms | overhead p50 ms | overhead p99 ms | throughput req/s "
        "| proxy CPU µs/req | other load (CPUs) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in TARGETS:
        row = summary[t]
        cpu = row["cpu_us_per_request"]
        proxy_cpu = {
            "direct": "-",
            "bare": f"{cpu['bare']:.0f}",
            "toolwatch": f"{cpu['toolwatch']:.0f} (+{cpu['recorder']:.0f} recorder)",
        }[t]
        oh50 = f"{row['overhead_p50_ms']:.3f}" if t != "direct" else "-"
        oh99 = f"{row['overhead_p99_ms']:.3f}" if t != "direct" else "-"
        lines.append(
            f"| {t} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | {oh50} | {oh99} "
            f"| {row['throughput_rps']:.0f} | {proxy_cpu} | {row['other_load_cpus']:.2f} |"
        )
    lines += ["", "| toolwatch / bare | measured | target | |", "|---|---:|---:|---|"]
    for key, label, limit, better in (
        ("overhead_p50", "overhead p50", "<= 1.5x", lambda v: v <= LIMITS["overhead_p50"]),
        ("overhead_p99", "overhead p99", "<= 1.5x", lambda v: v <= LIMITS["overhead_p99"]),
        ("throughput", "throughput", ">= 0.8x", lambda v: v >= LIMITS["throughput"]),
    ):
        v = summary["ratios"][key]
        shown, verdict = (
            ("n/a", "bare overhead <= 0: too noisy") if v is None else (f"{v:.3f}x", "ok" if better(v) else "MISSED")
        )
        lines.append(f"| {label} | {shown} | {limit} | {verdict} |")
    cpu_ratio = summary["ratios"]["proxy_cpu"]
    lines.append(f"| proxy CPU per request (not a target) | {cpu_ratio:.3f}x | | |")
    noisy = max(summary[t]["other_load_cpus"] for t in TARGETS)
    if noisy > 0.2:
        lines += [
            "",
            f"note: other processes kept up to {noisy:.2f} CPUs busy during the runs; "
            "latency figures (p99 above all) are noisy.",
        ]
    return "\n".join(lines)
