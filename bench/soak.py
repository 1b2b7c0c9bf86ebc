"""Sustained load: toolwatch at half of the bare passthrough's maximum throughput, for 10 minutes.

    python bench/soak.py [--duration 600] [--every 60] [--rate R] [--mode json] [--connections 32]

First the bare passthrough's maximum is measured (``--probe`` seconds of
``wrk -t1 -c32 --timeout 30s -s bench/wrk/chat.lua URL -- json BODIES``), unless ``--rate`` gives the
rate. Then wrk sends requests at half of it through ``toolwatch serve`` (recording on, embedded store):

    wrk -t1 -c32 -d600s --timeout 30s -s bench/wrk/paced.lua URL -- json BODIES RATE

Once a second the harness reads ``/_toolwatch/api/status`` (``exchanges_spooled``, ``calls_written``,
``spool_lag_bytes``) and ``/metrics`` (``toolwatch_recorder_lag_seconds``), and the RSS and CPU time of
the proxy and its recorder. Spool lag is measured from the outside: for every reading, the time until
``calls_written`` reached the ``exchanges_spooled`` of that reading (still open: its age so far). Every
``--every`` seconds one row of the table is printed; at the end, the verdict: the lag stayed under 5 s,
and each process's RSS is flat (it grew by less than 10 % or 10 MB from the end of the first interval to
the end of the run).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import aiohttp
from wrk.procs import (
    Child,
    Toolwatch,
    cpu_seconds,
    drain,
    fmt_cmd,
    rss_of,
    run_wrk,
    settle,
    spawn,
    status,
    toolwatch_pids,
    write_bodies,
    wrk_command,
)

LAG_LIMIT_S = 5.0
RECORDER_RSS_LIMIT_MB = 500.0  # the limit with the embedded store


async def lag_metric(session: aiohttp.ClientSession, url: str) -> float | None:
    async with session.get(f"{url}/metrics") as r:
        text = await r.text()
    for line in text.splitlines():
        if line.startswith("toolwatch_recorder_lag_seconds "):
            return float(line.split()[1])
    return None


class Monitor:
    """Reads toolwatch once per ``poll`` seconds; ``row`` summarises the interval since the last row."""

    def __init__(self, tw: Toolwatch, poll: float) -> None:
        assert tw.proc is not None
        self.tw, self.poll = tw, poll
        self.pids = toolwatch_pids(tw)
        self.pending: deque[tuple[float, int]] = deque()  # (time, exchanges_spooled) not yet stored
        self.rows: list[dict[str, float]] = []
        self.max_lag = 0.0
        self.phase = "load"  # then "catch-up"; a row shows the phase its interval began in
        self._reset(time.monotonic(), None)

    def _reset(self, now: float, st: dict[str, Any] | None) -> None:
        self.t0, self.row_phase = now, self.phase
        self.lag = self.lag_metric = self.spool_lag = 0.0
        self.spooled0 = int(st.get("exchanges_spooled") or 0) if st else None
        self.written0 = int(st.get("calls_written") or 0) if st else None
        self.cpu0 = {p: cpu_seconds(p) for pids in self.pids.values() for p in pids}

    async def run(self, started: float, every: float) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10.0)) as s:
            st = await status(s, self.tw.url)
            self._reset(time.monotonic(), st)
            while True:
                await asyncio.sleep(self.poll)
                st = await status(s, self.tw.url)
                now = time.monotonic()
                pids = toolwatch_pids(self.tw)
                if pids != self.pids:
                    print(f"toolwatch's processes changed (a restart?): {pids}", file=sys.stderr)
                    self.pids = pids
                self.observe(now, st, await lag_metric(s, self.tw.url))
                if now - self.t0 >= every - self.poll / 2:
                    self.row(now, st, started)

    def observe(self, now: float, st: dict[str, Any], metric: float | None) -> None:
        spooled, written = int(st.get("exchanges_spooled") or 0), int(st.get("calls_written") or 0)
        self.pending.append((now, spooled))
        while self.pending and self.pending[0][1] <= written:
            self.lag = max(self.lag, now - self.pending.popleft()[0])
        if self.pending:
            self.lag = max(self.lag, now - self.pending[0][0])
        self.lag_metric = max(self.lag_metric, metric or 0.0)
        self.spool_lag = max(self.spool_lag, float(st.get("spool_lag_bytes") or 0) / 1e6)
        self.max_lag = max(self.max_lag, self.lag)

    def finish(self, st: dict[str, Any], started: float) -> None:
        """The last, partial interval (everything is stored by now)."""
        now = time.monotonic()
        if now - self.t0 >= self.poll:
            self.observe(now, st, None)
            self.row(now, st, started)

    def row(self, now: float, st: dict[str, Any], started: float) -> None:
        wall = now - self.t0
        spooled, written = int(st.get("exchanges_spooled") or 0), int(st.get("calls_written") or 0)
        row = {
            "t": now - started,
            "in_rps": (spooled - (self.spooled0 or 0)) / wall,
            "stored_rps": (written - (self.written0 or 0)) / wall,
            "lag": self.lag,
            "lag_metric": self.lag_metric,
            "spool_lag_mb": self.spool_lag,
        }
        for k, pids in self.pids.items():
            row[f"{k}_rss"] = rss_of(pids)
            row[f"{k}_cpu"] = sum(cpu_seconds(p) - self.cpu0.get(p, 0.0) for p in pids) / wall * 100.0
        self.rows.append(row)
        print(
            f"| {row['t']:.0f} | {self.row_phase} | {row['in_rps']:.0f} | {row['stored_rps']:.0f} | {row['lag']:.1f} "
            f"| {row['lag_metric']:.1f} | {row['spool_lag_mb']:.2f} | {row['proxy_rss']:.0f} "
            f"| {row['recorder_rss']:.0f} | {row['proxy_cpu']:.0f} | {row['recorder_cpu']:.0f} |",
            flush=True,
        )
        self._reset(now, st)


def flat(rows: list[dict[str, float]], key: str) -> tuple[bool, str]:
    if len(rows) < 2:
        return True, f"{key}: one interval only, no trend"
    first, last = rows[0][key], rows[-1][key]
    grew = last - first
    ok = grew < max(10.0, 0.10 * first)
    return ok, f"{key} {first:.0f} -> {last:.0f} MB ({grew:+.0f} MB, max {max(r[key] for r in rows):.0f})"


async def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="toolwatch-soak-"))
    children: list[Child] = []
    tw: Toolwatch | None = None
    log = workdir / "roles.log"
    try:
        bodies = write_bodies(workdir)[args.mode]
        upstream, hello = await spawn("upstream", log=log)
        children.append(upstream)
        up = hello["url"]
        rate = args.rate
        if rate is None:
            bare, hello = await spawn("bare", up, log=log)
            probe = wrk_command(f"{hello['url']}/v1/chat/completions", 32, args.probe, args.mode, bodies)
            res = await run_wrk(probe)
            await bare.stop()
            rate = res["rps"] / 2
            shown = fmt_cmd(probe, {"URL": hello["url"], "BODIES": str(bodies)})
            print(f"bare passthrough max: {res['rps']:.0f} req/s (`{shown}`); soak rate {rate:.0f} req/s")
        folder = workdir / "toolwatch"
        folder.mkdir()
        tw = Toolwatch(folder, up, {})
        await tw.start()
        await settle(tw)
        url = f"{tw.url}/openai/v1/chat/completions"
        cmd = wrk_command(url, args.connections, args.duration, args.mode, bodies, rate=rate)
        shown = fmt_cmd(cmd, {"URL": tw.url, "BODIES": str(bodies)})
        print(f"\nsoak: `{shown}`; toolwatch with recording on, embedded store, default settings\n")
        print(
            "| t s | phase | spooled req/s | stored req/s | max lag s | lag metric max s | spool lag MB max "
            "| proxy RSS MB | recorder RSS MB | proxy CPU % | recorder CPU % |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
        monitor = Monitor(tw, args.poll)
        started = time.monotonic()
        watch = asyncio.get_running_loop().create_task(monitor.run(started, args.every))
        try:
            res = await run_wrk(cmd)
            t_end = time.monotonic()
            monitor.phase = "catch-up"
            st = await drain(tw, timeout=600.0)  # the monitor goes on: the backlog's lag counts too
            catch_up = time.monotonic() - t_end
        finally:
            watch.cancel()
        monitor.finish(st, started)
        rc = await tw.stop()
    except BaseException:
        if tw is not None:
            print(f"toolwatch log (last lines):\n{tw.log_tail()}", file=sys.stderr)
        raise
    finally:
        if tw is not None and tw.proc is not None and tw.proc.returncode is None:
            await tw.stop()
        for child in reversed(children):
            await child.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    lat = res["latency_us"]
    print(
        f"\nwrk: {res['requests']} requests, {res['rps']:.0f} req/s (asked {rate:.0f}), "
        f"p50 {lat['p50'] / 1000:.2f} ms, p99 {lat['p99'] / 1000:.2f} ms, max {lat['max'] / 1000:.0f} ms, "
        f"errors {res['errors']} {res['first_bad']}"
    )
    print(
        f"toolwatch: {st.get('calls_written')} calls stored of {st.get('exchanges_spooled')} spooled, "
        f"records_dropped {st.get('records_dropped')}; caught up {catch_up:.1f} s after the load; exit code {rc}"
    )
    lag_ok = monitor.max_lag < LAG_LIMIT_S
    rss = [flat(monitor.rows, f"{k}_rss") for k in ("proxy", "recorder")]
    rec_max = max((r["recorder_rss"] for r in monitor.rows), default=0.0)
    print("\nverdict:")
    print(f"- spool lag: max {monitor.max_lag:.1f} s, limit {LAG_LIMIT_S:g} s: {'met' if lag_ok else 'MISSED'}")
    for ok, text in rss:
        print(f"- RSS flat: {text}: {'flat' if ok else 'GROWING'}")
    print(
        f"- recorder RSS max {rec_max:.0f} MB, limit {RECORDER_RSS_LIMIT_MB:g} MB (embedded store): "
        f"{'met' if rec_max < RECORDER_RSS_LIMIT_MB else 'MISSED'}"
    )
    print(f"- load: {res['errors']} errors; {args.duration:g} s (the issue asks for 600 s)")
    ok = lag_ok and all(ok for ok, _ in rss) and res["errors"] == 0 and rc == 0
    return 0 if ok and st.get("calls_written") == st.get("exchanges_spooled") else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load (the issue: 600)")
    ap.add_argument("--every", type=float, default=60.0, help="seconds per row of the table")
    ap.add_argument("--rate", type=float, help="requests per second (default: half the bare passthrough's max)")
    ap.add_argument("--probe", type=float, default=10.0, help="seconds of the bare passthrough's max measurement")
    ap.add_argument("--mode", choices=("json", "sse"), default="json")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (enough for the rate)")
    ap.add_argument("--poll", type=float, default=1.0, help="seconds between status readings")
    args = ap.parse_args()
    if args.duration < 1 or args.every < args.poll or args.connections < 1:
        ap.error("need --duration >= 1, --every >= --poll and --connections >= 1")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
