"""Crash loop (not a test): ``toolwatch serve`` under load, SIGKILLed ``--kills`` times, then every request the
client got a whole answer for must be in the store exactly once.

Each round allows ``--per-round`` more requests and, once ``--kill-after`` of them are answered, SIGKILLs in
turn serve alone, its process group, or its children (the recorder). A killed serve is started again at once
on the same store and spool; a killed recorder is restarted by serve. At the end serve is stopped with
SIGTERM (the recorder drains the spool) and the store is read in a process of its own. The oracle and the
helpers are those of the fault suite (``tests/faults/oracle.py``).

Usage: python bench/crash_loop.py [--kills 30] [--concurrency 12] [--per-round 150] [--kill-after 80] [--keep DIR]
Exit status 0 only when nothing answered is missing, nothing is stored twice, and the rollups and the CLI agree.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.faults.oracle import CrashLoop, Load, Round, cli_problems, fake_upstream, judge, read_store  # noqa: E402


def line(r: Round) -> str:
    gone = f"{r.gone_after * 1000:7.1f} ms" if r.gone_after is not None else f"{'(lives on)':>10}"
    return (
        f"round {r.number:3d}  kill {r.target:<8}  children {','.join(map(str, r.children)) or '-':>7}"
        f"  gone after {gone}  running again after {r.restart:5.2f} s"
        f"  | sent {r.sent:5d}  answered {r.answered:5d}  failed {r.failed:4d}"
    )


async def run(args: argparse.Namespace, data: Path) -> int:
    started = time.monotonic()
    async with fake_upstream() as upstream:
        crashes = CrashLoop(
            data,
            upstream.url,
            Load(concurrency=args.concurrency),
            per_round=args.per_round,
            kill_after=args.kill_after,
        )
        try:
            await crashes.start()
            for _ in range(args.kills):
                print(line(await crashes.round()), flush=True)
            tally = await crashes.finish()
            assert crashes.serve is not None
            rc = await crashes.serve.stop(signal.SIGTERM)
        finally:
            await crashes.close()
    counts = await read_store(crashes.serve.store)
    verdict = judge(counts, tally.answered, tally.sent)
    problems = list(verdict.problems)
    if rc != 0:
        problems.append(f"serve exited with {rc} on SIGTERM")
    problems += await cli_problems(crashes.serve.store, counts, data)
    gone = [r.gone_after for r in crashes.rounds if r.gone_after is not None]
    by_target = {t: sum(r.target == t for r in crashes.rounds) for t in ("serve", "group", "children")}
    rows = [
        ("rounds", f"{len(crashes.rounds)} (serve {by_target['serve']}, group {by_target['group']},"
                   f" children {by_target['children']})"),
        ("requests sent", verdict.sent),
        ("answered (whole 200)", verdict.answered),
        ("stored (distinct requests)", verdict.stored),
        ("stored, not answered", len(verdict.stored_ids - tally.answered)),
        ("missing (answered, not stored)", len(verdict.missing)),
        ("duplicates (rows beyond one)", verdict.duplicates),
        ("rollups = tables", "yes" if not any("_minute" in p for p in problems) else "NO"),
        ("worst time for children to exit", f"{max(gone) * 1000:.1f} ms" if gone else "-"),
        ("worst time to run again", f"{max(r.restart for r in crashes.rounds):.2f} s" if crashes.rounds else "-"),
        ("wall time", f"{time.monotonic() - started:.1f} s"),
    ]  # fmt: skip
    print()
    print("| figure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    for p in problems:
        print(f"PROBLEM: {p}")
    ok = not problems and not verdict.missing and verdict.duplicates == 0 and (not gone or max(gone) < 1.0)
    print("\nOK" if ok else "\nFAILED")
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=30, help="how many SIGKILLs (default 30)")
    ap.add_argument("--concurrency", type=int, default=12, help="client connections (default 12)")
    ap.add_argument("--per-round", type=int, default=150, help="requests allowed per round (default 150)")
    ap.add_argument("--kill-after", type=int, default=80, help="answers per round before the kill (default 80)")
    ap.add_argument("--keep", type=Path, help="keep the store and spool in this folder (default: a temporary one)")
    args = ap.parse_args()
    if args.kills * args.per_round + args.kill_after > 10_000:
        ap.error("at most 10,000 requests in all: `toolwatch calls --last` lists no more")
    # the fake upstream's connections break with every kill: aiohttp would log each one
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=False)
        return asyncio.run(run(args, args.keep))
    data = Path(tempfile.mkdtemp(prefix="toolwatch-crash-loop-"))
    try:
        return asyncio.run(run(args, data))
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
