"""Many connections: 1,000 concurrent connections held open through toolwatch, counting errors.

    python bench/many_connections.py [--connections 1000] [--duration 30] [--delay 5] [--mode json]

The fake upstream answers every request after ``--delay`` seconds (``bench/wrk/roles.py slow-upstream``),
so each of wrk's connections holds a request in flight most of the time:

    wrk -t2 -c1000 -d30s --timeout 30s -s bench/wrk/chat.lua URL -- json BODIES

runs once against the slow upstream itself (direct: what the machine and wrk manage without a proxy) and
once through ``toolwatch serve`` (recording on, embedded store, default settings, whose
``max_connections`` must be above the connections). While wrk runs, the harness counts the established
TCP connections on the target's port (``/proc/net/tcp``) and, for toolwatch, its ``in_flight`` requests;
the table gives their peaks, wrk's error counts (connect, read, write, non-200 status, timeout, answers
failing the check) and latency. It passes when toolwatch has no errors and held every connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from wrk.procs import (
    WRK_DIR,
    Child,
    Toolwatch,
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


def established(port: int) -> int:
    """TCP connections in state ESTABLISHED whose local port is ``port`` (the server's side)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    n += 1
    return n


def first_problem(log: Path, lines: int = 25) -> str:
    """The first WARNING or ERROR line of toolwatch's log and the lines after it (its traceback)."""
    with contextlib.suppress(OSError):
        text = log.read_text(errors="replace").splitlines()
        for i, line in enumerate(text):
            if " WARNING " in line or " ERROR " in line:
                return "\n".join(text[i : i + lines])
    return ""


def max_connections() -> tuple[int, str]:
    """toolwatch's ``max_connections`` as serve will see it (the environment, else the default)."""
    env = os.environ.get("TOOLWATCH_MAX_CONNECTIONS")
    if env:
        return int(env), "TOOLWATCH_MAX_CONNECTIONS"
    from toolwatch.schemas.settings import Settings

    return int(Settings.model_fields["max_connections"].default), "default"


async def watch(url: str, port: int, tw: Toolwatch | None, peaks: dict[str, float]) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0)) as s:
        while True:
            peaks["established"] = max(peaks["established"], established(port))
            if tw is not None and tw.proc is not None:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    st = await status(s, url)
                    peaks["in_flight"] = max(peaks["in_flight"], st.get("in_flight") or 0)
                pids = toolwatch_pids(tw)
                peaks["proxy_rss"] = max(peaks["proxy_rss"], rss_of(pids["proxy"]))
                peaks["recorder_rss"] = max(peaks["recorder_rss"], rss_of(pids["recorder"]))
            await asyncio.sleep(0.5)


async def measure(
    args: argparse.Namespace, name: str, base: str, path: str, bodies: Path, tw: Toolwatch | None
) -> dict[str, Any]:
    port = int(base.rsplit(":", 1)[1])
    cmd = wrk_command(base + path, args.connections, args.duration, args.mode, bodies, threads=args.threads)
    peaks = dict.fromkeys(("established", "in_flight", "proxy_rss", "recorder_rss"), 0.0)
    task = asyncio.get_running_loop().create_task(watch(base, port, tw, peaks))
    try:
        res = await run_wrk(cmd)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    print(f"{name}: {res['requests']} requests, {res['errors']} errors {res['first_bad']}", file=sys.stderr, flush=True)
    return {"name": name, "cmd": cmd, "res": res, "peaks": peaks}


def row(m: dict[str, Any], connections: int) -> str:
    r, p, lat = m["res"], m["peaks"], m["res"]["latency_us"]
    errs = "/".join(
        str(r[k]) for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts", "bad_bodies")
    )
    rss = f"{p['proxy_rss']:.0f} + {p['recorder_rss']:.0f}" if p["proxy_rss"] else "—"
    inflight = f"{p['in_flight']:.0f}" if m["name"] == "toolwatch" else "—"
    return (
        f"| {m['name']} | {connections} | {r['requests']} | {r['rps']:.0f} | {lat['p50'] / 1000:.0f} "
        f"| {lat['p99'] / 1000:.0f} | {lat['max'] / 1000:.0f} | {r['errors']} ({errs}) | {p['established']:.0f} "
        f"| {inflight} | {rss} |"
    )


async def run(args: argparse.Namespace) -> int:
    limit, origin = max_connections()
    print(f"toolwatch max_connections: {limit} ({origin})")
    if args.connections > limit:
        print(f"note: {args.connections} connections is over max_connections: the rest are answered 503")
    workdir = Path(tempfile.mkdtemp(prefix="toolwatch-conns-"))
    children: list[Child] = []
    tw: Toolwatch | None = None
    try:
        bodies = write_bodies(workdir)[args.mode]
        up, hello = await spawn(
            "slow-upstream", str(args.delay), log=workdir / "roles.log", script=WRK_DIR / "roles.py"
        )
        children.append(up)
        folder = workdir / "toolwatch"
        folder.mkdir()
        tw = Toolwatch(folder, hello["url"], {})
        await tw.start()
        await settle(tw)
        started = time.monotonic()
        runs = [await measure(args, "direct", hello["url"], "/v1/chat/completions", bodies, None)]
        runs.append(await measure(args, "toolwatch", tw.url, "/openai/v1/chat/completions", bodies, tw))
        st = await drain(tw, timeout=300.0)
        elapsed = time.monotonic() - started
        rc = await tw.stop()
        problems = tw.log_problems()
        detail = first_problem(tw.log_path)
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

    print(
        f"\n## {args.connections} connections held through toolwatch ({args.mode}, upstream answers after "
        f"{args.delay:g} s, {args.duration:g} s per target)\n\n"
        f"- each run: `{fmt_cmd(runs[-1]['cmd'], {'URL': tw.url, 'BODIES': str(bodies)})}`\n"
        "- errors: total (connect/read/write/status/timeout/bad answer); established: peak TCP connections on "
        "the target's port; in flight: peak of toolwatch's `in_flight`; RSS: peak of proxy + recorder\n"
    )
    print(
        "| target | connections | requests | req/s | p50 ms | p99 ms | max ms | errors | established "
        "| in flight | RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for m in runs:
        print(row(m, args.connections))
    twr = runs[-1]
    held = twr["peaks"]["established"] >= args.connections
    print(
        f"\ntoolwatch: {st.get('calls_written')} calls stored of {st.get('exchanges_spooled')} spooled, "
        f"records_dropped {st.get('records_dropped')}; exit code {rc}; {len(problems)} warning/error log lines"
        + (f", first: {problems[0]}" if problems else "")
        + f"; measured for {elapsed:.0f} s"
    )
    if detail:
        print(f"\nthe first of them, with what follows it in the log:\n```\n{detail}\n```")
    ok = twr["res"]["errors"] == 0 and held
    print(
        f"verdict: {twr['res']['errors']} errors through toolwatch, peak {twr['peaks']['established']:.0f} of "
        f"{args.connections} connections established: {'held' if ok else 'NOT held'}"
    )
    return 0 if ok and rc == 0 and st.get("calls_written") == st.get("exchanges_spooled") else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=1000, help="concurrent wrk connections")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of wrk per target")
    ap.add_argument("--delay", type=float, default=5.0, help="seconds the upstream waits before answering")
    ap.add_argument("--mode", choices=("json", "sse"), default="json")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    args = ap.parse_args()
    if args.connections < args.threads or args.duration < 1 or args.delay < 0:
        ap.error("need --connections >= --threads, --duration >= 1 and --delay >= 0")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
