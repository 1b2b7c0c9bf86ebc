"""Streaming in lockstep: time to first byte, and how long each SSE chunk takes to cross the proxy.

    python bench/stream_lockstep.py [--streams 200] [--chunks 50] [--rounds 3] [--warmup 20]
                                    [--concurrency 1] [--chunk-timeout 10] [--toolwatch-env KEY=VALUE] [--quick]

The goal, from the issue: time-to-first-byte overhead within 1.5x the passthrough's, and no chunk held back.

The fake upstream and the client run in this process, on one uvloop event loop, and share one ``Stream``
per request (found by the ``X-Bench-Stream`` request header). The upstream (``FakeUpstream`` answering
with ``overhead_roles.REPLY``'s tool call and a text, OpenAI ``chat.completion.chunk`` events ending with
``data: [DONE]``, exactly ``--chunks`` events in all) writes event N, takes ``t_sent``, then waits until
the client has read event N before it writes event N+1. The client reads ``resp.content`` until it holds
the whole event, takes ``t_read``, checks the bytes are the ones sent, and lets the upstream go on. Both
timestamps are ``time.perf_counter_ns()`` of this process, so ``t_read - t_sent`` is the time one chunk
took from the upstream's socket to the client, through whatever is in between. A proxy that held a chunk
back would stall the stream (the upstream sends nothing more until the client has the chunk): the run
stops with an error after ``--chunk-timeout`` seconds without a byte.

Targets, all in front of that upstream: ``direct`` (the client talks to the upstream), ``bare``
(``overhead_roles.py bare``, a bare aiohttp passthrough, its own process), ``toolwatch`` (``toolwatch
serve`` on a temporary embedded store, recording on) and ``toolwatch-norec`` (the same with ``record =
false``, as ``TOOLWATCH_RECORD=false``), started as ``wrk_overhead.py`` starts them. A round runs every
target once, in an order rotated from round to round: ``--warmup`` unmeasured streams, then ``--streams``
measured ones, ``--concurrency`` at a time, on one keep-alive connection pool per target. Before and
after each run of toolwatch with recording on its recorder catches up with the spool.

Per target, medians over rounds of: TTFB (request sent to the first body byte read) p50/p99, the chunk gap
(``t_read - t_sent``, every event of every stream) p50/p99, and the worst gap of all rounds; the overhead
over direct (the target's percentile minus direct's, same round); for toolwatch the ratios of its overhead
to bare's (median and min-max over rounds); the CPUs other processes kept busy during the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
import wrk_overhead
from aiohttp import web
from overhead_report import percentile
from overhead_roles import HEADERS, REPLY, bodies
from wrk.procs import (
    cpu_seconds,
    drain,
    machine_busy_seconds,
    spawn,
    status,
    toolwatch_pids,
)
from wrk_overhead import COMPARED, ORDER, Target, _ratio, _spread, record_setting

from tests.fakes.upstreams import FakeUpstream, Received, Reply
from toolwatch.demo import wire_openai
from toolwatch.demo.rendered import Rendered
from toolwatch.demo.script import Ids

STREAM_HEADER = "X-Bench-Stream"
DONE = b"data: [DONE]\n\n"
TEXT = "The forecast for Paris calls for light rain this afternoon, clearing by the evening. " * 40


@dataclass
class Stream:
    """One request's shared state: what the upstream wrote and when, and when the client read it."""

    acks: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    events: list[bytes] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)  # perf_counter_ns after the upstream's write of event N
    read: list[int] = field(default_factory=list)  # perf_counter_ns once the client holds all of event N
    first_byte: int = 0


class LockstepUpstream(FakeUpstream):
    """``FakeUpstream``, but a stream's event N+1 is written only once the client has read event N."""

    def __init__(self, reply: Reply, streams: dict[str, Stream]) -> None:
        super().__init__(default=reply, record=False)
        self.streams = streams

    async def _send(self, request: web.Request, reply: Reply, rendered: Rendered) -> web.StreamResponse:
        stream = self.streams.get(request.headers.get(STREAM_HEADER, ""))
        if stream is None or not rendered.stream:
            return await super()._send(request, reply, rendered)
        response = web.StreamResponse(status=rendered.status, headers=rendered.headers)
        await response.prepare(request)
        for n, piece in enumerate(rendered.pieces):
            stream.events.append(piece)
            await response.write(piece)
            stream.sent.append(time.perf_counter_ns())
            if await stream.acks.get() != n:
                raise RuntimeError(f"the client acknowledged the wrong event (expected {n})")
        await response.write_eof()
        return response


def lockstep_reply(chunks: int) -> Reply:
    """``REPLY`` (a ``get_weather`` tool call) with a text long enough for exactly ``chunks`` SSE events."""
    received = Received.capture("POST", "/v1/chat/completions", {}, bodies(True, 1)[0])
    least = len(wire_openai.render(dataclasses.replace(REPLY, text="x"), received, Ids()).pieces)
    if chunks < least:
        raise ValueError(f"--chunks must be at least {least} (role, a tool call, finish, usage, [DONE])")
    for length in range(1, len(TEXT) + 1):
        reply = dataclasses.replace(REPLY, text=TEXT[:length])
        if len(wire_openai.render(reply, received, Ids()).pieces) == chunks:
            return reply
    raise ValueError(f"--chunks {chunks} is more than this reply's text can make")


@dataclass
class Bench(wrk_overhead.Bench):
    """``wrk_overhead.Bench`` (toolwatch started, drained and stopped the same way), with this process's
    lockstep upstream instead of the upstream role, and streams read here instead of wrk."""

    reply: Reply = REPLY
    streams: dict[str, Stream] = field(default_factory=dict)
    upstream: LockstepUpstream | None = None
    payloads: list[bytes] = field(default_factory=lambda: bodies(True))
    issued: int = 0

    async def start(self) -> None:
        self.upstream = LockstepUpstream(self.reply, self.streams)
        await self.upstream.start()
        up = self.upstream.url
        self.targets["direct"] = Target("direct", f"{up}/v1/chat/completions", {"proxy": []})  # this process
        bare, hello = await spawn("bare", up, log=self.workdir / "roles.log")
        self.children.append(bare)
        self.targets["bare"] = Target("bare", f"{hello['url']}/v1/chat/completions", {"proxy": [bare.proc.pid]})
        await self._toolwatch("toolwatch", up, {})
        if record_setting():
            await self._toolwatch("toolwatch-norec", up, {"TOOLWATCH_RECORD": "false"})
        else:
            self.notes.append("toolwatch with recording off: skipped, the settings have no `record`")
        for note in self.notes:
            print(f"note: {note}", file=sys.stderr)

    async def one_stream(self, session: aiohttp.ClientSession, url: str) -> Stream:
        """One lockstep stream: every event read whole, checked, then acknowledged to the upstream."""
        sid = str(self.issued)
        body = self.payloads[self.issued % len(self.payloads)]
        self.issued += 1
        self.streams[sid] = st = Stream()
        n, buf, now = 0, b"", 0
        try:
            t0 = time.perf_counter_ns()
            async with session.post(url, data=body, headers={**HEADERS, STREAM_HEADER: sid}) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"{url}: status {resp.status}: {(await resp.read())[:300]!r}")
                while True:
                    while (end := buf.find(b"\n\n")) < 0:
                        data = await resp.content.readany()
                        now = time.perf_counter_ns()
                        if not data:
                            raise RuntimeError(f"{url}: the stream ended before event {n} was complete")
                        if not st.first_byte:
                            st.first_byte = now - t0
                        buf += data
                    event, buf = buf[: end + 2], buf[end + 2 :]
                    if n >= len(st.events) or event != st.events[n] or buf:
                        raise RuntimeError(f"{url}: event {n} is not the one sent: {event[:200]!r} + {buf[:80]!r}")
                    st.read.append(now)
                    st.acks.put_nowait(n)
                    n += 1
                    if event == DONE:
                        break
                rest = await resp.content.read()
                if rest:
                    raise RuntimeError(f"{url}: bytes after data: [DONE]: {rest[:200]!r}")
        except aiohttp.ServerTimeoutError as e:
            raise RuntimeError(
                f"{url}: event {n} held back: nothing read for {self.args.chunk_timeout:g} s after the upstream "
                f"wrote it ({len(st.sent)} of {len(st.events)} written, {n} read)"
            ) from e
        finally:
            del self.streams[sid]
        if n != len(st.sent):
            raise RuntimeError(f"{url}: {n} events read, {len(st.sent)} written")
        return st

    async def streams_through(self, session: aiohttp.ClientSession, url: str, count: int) -> list[Stream]:
        done: list[Stream] = []
        left = count

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                done.append(await self.one_stream(session, url))

        await asyncio.gather(*(worker() for _ in range(self.args.concurrency)))
        return done

    async def lockstep_run(self, t: Target, session: aiohttp.ClientSession) -> dict[str, Any]:
        args = self.args
        if t.tw is not None:
            t.pids = toolwatch_pids(t.tw)  # a restarted recorder has a new pid
        await self.streams_through(session, t.url, args.warmup)
        await self._drained(t)
        pids = self.all_pids()
        cpu0 = {p: cpu_seconds(p) for p in pids}
        self0, busy0, wall0 = _self_cpu(), machine_busy_seconds(), time.perf_counter()
        gc.collect()
        gc.disable()  # a collection in this process would stall upstream and client alike
        try:
            done = await self.streams_through(session, t.url, args.streams)
        finally:
            gc.enable()
        wall = time.perf_counter() - wall0
        ours = sum(cpu_seconds(p) - cpu0[p] for p in pids) + _self_cpu() - self0
        other = max(0.0, machine_busy_seconds() - busy0 - ours) / wall
        await self._drained(t)
        ttfb = sorted(st.first_byte / 1e6 for st in done)  # ms
        gaps = sorted((r - s) / 1e3 for st in done for s, r in zip(st.sent, st.read, strict=True))  # µs
        return {
            "streams": len(done),
            "chunks": len(gaps),
            "ttfb_p50": percentile(ttfb, 50),
            "ttfb_p99": percentile(ttfb, 99),
            "gap_p50": percentile(gaps, 50),
            "gap_p99": percentile(gaps, 99),
            "gap_max": gaps[-1],
            "other_cpus": other,
            "seconds": wall,
        }

    async def rounds(self) -> list[dict[str, Any]]:
        args, runs = self.args, []
        names = [n for n in ORDER if n in self.targets]
        sessions = {
            n: aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60.0),
                timeout=aiohttp.ClientTimeout(total=None, sock_read=args.chunk_timeout),
            )
            for n in names
        }
        try:
            for r in range(args.rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    res = await self.lockstep_run(self.targets[name], sessions[name])
                    runs.append({"round": r, "target": name, **res})
                    print(
                        f"round {r + 1}/{args.rounds} {name:16} TTFB p50 {res['ttfb_p50']:.3f} ms "
                        f"p99 {res['ttfb_p99']:.3f} ms; gap p50 {res['gap_p50']:.0f} µs p99 {res['gap_p99']:.0f} µs "
                        f"max {res['gap_max']:.0f} µs; {res['seconds']:.1f} s, other load {res['other_cpus']:.2f} CPUs",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            for s in sessions.values():
                await s.close()
        return runs

    async def stop(self) -> dict[str, int]:
        codes = await super().stop()
        if self.upstream is not None:
            await self.upstream.close()
        return codes


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# -- the table ---------------------------------------------------------------------------------------
def table(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    med = statistics.median
    by = {(r["round"], r["target"]): r for r in runs}
    names = [n for n in ORDER if any(r["target"] == n for r in runs)]
    rounds = range(args.rounds)
    lines = [
        "| target | streams | chunks | TTFB p50 ms | TTFB p99 ms | +TTFB p50 ms | +TTFB p99 ms | gap p50 µs "
        "| gap p99 µs | gap max µs | +gap p50 µs | +gap p99 µs | +TTFB p50 / bare | +TTFB p99 / bare "
        "| +gap p50 / bare | +gap p99 / bare | other CPUs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = ("ttfb_p50", "ttfb_p99", "gap_p50", "gap_p99")
    for name in names:
        rs, ds, bs = ([by[(i, n)] for i in rounds] for n in (name, "direct", "bare"))
        ovh = {k: [r[k] - d[k] for r, d in zip(rs, ds, strict=True)] for k in keys}
        bovh = {k: [b[k] - d[k] for b, d in zip(bs, ds, strict=True)] for k in keys}
        cells = [name, str(sum(r["streams"] for r in rs)), str(sum(r["chunks"] for r in rs))]
        cells += [f"{med(r[k] for r in rs):.3f}" for k in ("ttfb_p50", "ttfb_p99")]
        cells += ["—", "—"] if name == "direct" else [f"{med(ovh[k]):.3f}" for k in ("ttfb_p50", "ttfb_p99")]
        cells += [f"{med(r[k] for r in rs):.0f}" for k in ("gap_p50", "gap_p99")]
        cells.append(f"{max(r['gap_max'] for r in rs):.0f}")
        cells += ["—", "—"] if name == "direct" else [f"{med(ovh[k]):.0f}" for k in ("gap_p50", "gap_p99")]
        if name in COMPARED:
            cells += [_spread([_ratio(a, b) for a, b in zip(ovh[k], bovh[k], strict=True)]) for k in keys]
        else:
            cells += ["—"] * 4
        cells.append(f"{med(r['other_cpus'] for r in rs):.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def header(args: argparse.Namespace, bench: Bench, load: tuple[float, ...], loadafter: tuple[float, ...]) -> str:
    argv = " ".join(sys.argv[1:])
    sizes = sorted(len(p) for p in bench.payloads)
    lines = [
        f"## SSE streams in lockstep ({args.rounds} rounds x {args.streams} streams x {args.chunks} events "
        f"per target, {args.warmup} warm-up streams per run, concurrency {args.concurrency}, "
        f"{time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"- command: `python bench/stream_lockstep.py{(' ' + argv) if argv else ''}`",
        f"- machine: {os.cpu_count()} cores, load average {_load(load)} before, {_load(loadafter)} after",
        f"- requests: chat-completions bodies of {sizes[0]}-{sizes[-1]} bytes with `stream: true`; answers: "
        f"{args.chunks} `chat.completion.chunk` events (text deltas, one tool call's deltas, finish, usage, "
        "`[DONE]`)",
        "- TTFB: request sent to first body byte read; gap: upstream wrote event N to client read all of it; "
        "figures are medians over rounds (gap max: the worst of all); `+`: the target's percentile minus "
        "direct's, same round; `/ bare`: toolwatch's `+` over bare's, median (min–max) over rounds; other CPUs: "
        "CPU time of processes outside the benchmark per second of the run",
    ]
    lines += [f"- {note}" for note in bench.notes]
    return "\n".join(lines)


def _load(avg: tuple[float, ...]) -> str:
    return " / ".join(f"{x:.2f}" for x in avg)


async def run(args: argparse.Namespace) -> int:
    load = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="toolwatch-lockstep-"))
    bench = Bench(args, workdir, reply=lockstep_reply(args.chunks))
    final: dict[str, Any] | None = None
    started = time.monotonic()
    try:
        await bench.start()
        runs = await bench.rounds()
        tw = bench.targets["toolwatch"].tw
        if tw is not None:
            await drain(tw)
            async with aiohttp.ClientSession() as s:
                final = await status(s, tw.url)
    except BaseException:
        for tw in bench.toolwatches:
            print(f"{tw.workdir.name} log (last lines):\n{tw.log_tail()}", file=sys.stderr)
        raise
    finally:
        codes = await bench.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    text = header(args, bench, load, os.getloadavg()) + "\n\n" + table(runs, args) + "\n"
    if final is not None:
        text += (
            f"\ntoolwatch: {final.get('calls_written')} calls stored of {final.get('exchanges_spooled')} spooled, "
            f"records_dropped {final.get('records_dropped')}; exit codes after SIGTERM {codes}; "
            f"{time.monotonic() - started:.0f} s in all\n"
        )
    print(text)
    ok = final is None or final.get("calls_written") == final.get("exchanges_spooled")
    return 0 if ok and all(c == 0 for c in codes.values()) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, help="measured streams per target and round (200; --quick 20)")
    ap.add_argument("--chunks", type=int, default=50, help="SSE events per stream, [DONE] included (50)")
    ap.add_argument("--rounds", type=int, help="rounds over all targets, in rotated order (3; --quick 1)")
    ap.add_argument("--warmup", type=int, help="unmeasured streams before each measured run (20; --quick 5)")
    ap.add_argument("--concurrency", type=int, default=1, help="streams in flight at once (1)")
    ap.add_argument("--chunk-timeout", type=float, default=10.0, help="seconds without a byte: held back (10)")
    ap.add_argument(
        "--toolwatch-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for toolwatch serve, e.g. TOOLWATCH_WORKERS=2 (repeatable)",
    )
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 round of 20 streams per target")
    args = ap.parse_args()
    for name, full, quick in (("streams", 200, 20), ("rounds", 3, 1), ("warmup", 20, 5)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.streams < 1 or args.rounds < 1 or args.warmup < 0 or args.concurrency < 1 or args.chunk_timeout <= 0:
        ap.error("need --streams >= 1, --rounds >= 1, --warmup >= 0, --concurrency >= 1, --chunk-timeout > 0")
    if any("=" not in kv for kv in args.toolwatch_env):
        ap.error("--toolwatch-env takes KEY=VALUE")
    try:
        lockstep_reply(args.chunks)
    except ValueError as e:
        ap.error(str(e))
    return uvloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
