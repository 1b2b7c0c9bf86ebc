"""toolwatch's cost on the request path, measured with wrk against a bare passthrough, in one interleaved run.

    python bench/wrk_overhead.py [--rounds 5] [--duration 10] [--modes json,sse] [--connections 1,32]
                                 [--warmup 1] [--toolwatch-env KEY=VALUE] [--out FILE] [--json FILE]

Targets, all in front of the same fake upstream (``overhead_roles.py upstream``: a chat-completions answer
with a text and one ``get_weather`` tool call, as JSON or as an SSE stream when the request asks):

- ``direct``: the fake upstream itself;
- ``bare``: the least an aiohttp proxy can do (``overhead_roles.py bare``);
- ``toolwatch``: ``toolwatch serve --port 0 --store chdb://<tmp>/store`` with
  ``TOOLWATCH_UPSTREAM_OPENAI_URL`` on the fake upstream, recording on (its recorder stores every exchange);
- ``toolwatch-norec``: the same with ``TOOLWATCH_RECORD=false``, when the settings have ``record``;
- ``litellm``: LiteLLM's proxy (``litellm --config``), when ``litellm`` is on the PATH.

Each measurement is one wrk run (after an unmeasured ``--warmup`` run):

    wrk -t1 -c{1|32} -d10s --timeout 30s -s bench/wrk/chat.lua URL -- {json|sse} BODIES

where BODIES holds ``overhead_roles.bodies`` (2.8-4.6 KB requests with four tools, one per line) and URL is
the target's chat-completions URL. ``chat.lua`` checks every answer and prints p50/p90/p99 in µs as JSON.
A round measures every mode x connections x target once; the targets' order rotates from round to round.
Before and after each toolwatch run the recorder catches up with the spool, so its backlog never runs
during another target's run and all of its work for the run is counted.

One markdown table on stdout (progress on stderr): per mode, connections and target, the medians over
rounds of requests per second, p50 and p99, and the overhead over direct (the target's percentile minus
direct's, same round); for toolwatch and LiteLLM the ratios of overhead and throughput to bare's (median,
and min-max over rounds); peak RSS; the recorder's CPU per stored exchange; the proxy's CPU per request;
and the CPUs other processes kept busy during the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
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
import orjson
from wrk.procs import (
    Child,
    RssPeak,
    Toolwatch,
    cpu_seconds,
    drain,
    fmt_cmd,
    free_port,
    machine_busy_seconds,
    need_wrk,
    run_wrk,
    settle,
    spawn,
    status,
    toolwatch_pids,
    write_bodies,
    wrk_command,
)

ORDER = ("direct", "bare", "toolwatch", "toolwatch-norec", "litellm")
COMPARED = ("toolwatch", "toolwatch-norec", "litellm")  # rows with ratios to bare


@dataclass
class Target:
    name: str
    url: str
    pids: dict[str, list[int]]  # proxy: the processes answering; recorder: toolwatch's recorder
    tw: Toolwatch | None = None
    records: bool = False
    sent_calls: int = 0


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    targets: dict[str, Target] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)
    toolwatches: list[Toolwatch] = field(default_factory=list)
    others: list[asyncio.subprocess.Process] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bodies: dict[str, Path] = field(default_factory=dict)

    async def start(self) -> None:
        log = self.workdir / "roles.log"
        self.bodies = write_bodies(self.workdir)
        upstream, hello = await spawn("upstream", log=log)
        self.children.append(upstream)
        up = hello["url"]
        bare, hello = await spawn("bare", up, log=log)
        self.children.append(bare)
        self.targets["direct"] = Target("direct", f"{up}/v1/chat/completions", {"proxy": [upstream.proc.pid]})
        self.targets["bare"] = Target("bare", f"{hello['url']}/v1/chat/completions", {"proxy": [bare.proc.pid]})
        await self._toolwatch("toolwatch", up, {})
        if record_setting():
            await self._toolwatch("toolwatch-norec", up, {"TOOLWATCH_RECORD": "false"})
        else:
            self.notes.append(
                "toolwatch with recording off: skipped, the settings have no `record` (schemas/settings.py)"
            )
        if shutil.which("litellm"):
            await self._litellm(up)
        else:
            self.notes.append("LiteLLM's proxy: skipped, `litellm` is not installed (pip install 'litellm[proxy]')")
        for note in self.notes:
            print(f"note: {note}", file=sys.stderr)

    async def _toolwatch(self, name: str, upstream: str, env: dict[str, str]) -> None:
        folder = self.workdir / name
        folder.mkdir()
        tw = Toolwatch(folder, upstream, {**dict(kv.split("=", 1) for kv in self.args.toolwatch_env), **env})
        self.toolwatches.append(tw)
        await tw.start()
        records = env.get("TOOLWATCH_RECORD") != "false"
        if records:
            await settle(tw)
        url = f"{tw.url}/openai/v1/chat/completions"
        self.targets[name] = Target(name, url, toolwatch_pids(tw), tw, records)

    async def _litellm(self, upstream: str) -> None:
        port = free_port()
        config = self.workdir / "litellm.yaml"
        config.write_text(
            "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
            f"      api_base: {upstream}/v1\n      api_key: sk-bench\n"
        )
        with open(self.workdir / "litellm.log", "wb") as log:
            proc = await asyncio.create_subprocess_exec(
                "litellm",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--num_workers",
                "1",
                stdout=log,
                stderr=log,
                # a local benchmark with no master key (recent releases refuse to start without one)
                env={**os.environ, "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true"},
            )
        self.others.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180.0
        async with aiohttp.ClientSession() as s:
            while True:
                try:
                    async with s.get(f"{url}/health/liveliness") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if proc.returncode is not None or time.monotonic() > deadline:
                    self.notes.append(f"LiteLLM's proxy: did not start, see {self.workdir / 'litellm.log'}")
                    return
                await asyncio.sleep(1.0)
        self.targets["litellm"] = Target("litellm", f"{url}/v1/chat/completions", {"proxy": [proc.pid]})

    def all_pids(self) -> list[int]:
        return [p for t in self.targets.values() for pids in t.pids.values() for p in pids]

    async def measure(self, t: Target, mode: str, conns: int) -> dict[str, Any]:
        args = self.args
        if t.tw is not None:
            t.pids = toolwatch_pids(t.tw)  # a restarted recorder (or worker) has a new pid
        if args.warmup > 0:
            warm = await run_wrk(wrk_command(t.url, conns, args.warmup, mode, self.bodies[mode]))
            if warm["errors"]:
                raise RuntimeError(f"{t.name} {mode} c={conns} warm-up: {warm['errors']} errors, {warm['first_bad']}")
        written0 = await self._drained(t)
        pids = self.all_pids()
        cpu0 = {p: cpu_seconds(p) for p in pids}
        kids0, self0 = _rusage(resource.RUSAGE_CHILDREN), _rusage(resource.RUSAGE_SELF)
        busy0 = machine_busy_seconds()
        async with RssPeak({k: v for k, v in t.pids.items() if v}) as rss:
            res = await run_wrk(wrk_command(t.url, conns, args.duration, mode, self.bodies[mode]))
        busy = machine_busy_seconds() - busy0
        proxy_cpu = sum(cpu_seconds(p) - cpu0[p] for p in t.pids["proxy"])
        ours = sum(cpu_seconds(p) - cpu0[p] for p in pids)
        ours += _rusage(resource.RUSAGE_CHILDREN) - kids0 + _rusage(resource.RUSAGE_SELF) - self0
        other = max(0.0, busy - ours) / (res["duration_us"] / 1e6)
        written = await self._drained(t)
        out = {
            "rps": res["rps"],
            "p50_ms": res["latency_us"]["p50"] / 1000.0,
            "p99_ms": res["latency_us"]["p99"] / 1000.0,
            "requests": res["requests"],
            "errors": res["errors"],
            "first_bad": res["first_bad"],
            "proxy_cpu_us": proxy_cpu / max(1, res["requests"]) * 1e6,
            "rss_mb": dict(rss.peak),
            "other_cpus": other,
        }
        rec = t.pids.get("recorder") or []
        if rec and written is not None and written0 is not None:
            out["recorded"] = written - written0
            rec_cpu = sum(cpu_seconds(p) - cpu0.get(p, 0.0) for p in rec)
            out["recorder_cpu_us"] = rec_cpu / max(1, written - written0) * 1e6
        return out

    async def _drained(self, t: Target) -> int | None:
        """For toolwatch: wait for the recorder to catch up; the calls it has stored so far."""
        if t.tw is None or not t.records:
            return None
        return int((await drain(t.tw)).get("calls_written") or 0)

    async def rounds(self) -> list[dict[str, Any]]:
        args, runs = self.args, []
        names = [n for n in ORDER if n in self.targets]
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for mode in args.modes:
                for conns in args.connections:
                    for name in order:
                        res = await self.measure(self.targets[name], mode, conns)
                        runs.append({"round": r, "mode": mode, "c": conns, "target": name, **res})
                        print(
                            f"round {r + 1}/{args.rounds} {mode:4} c={conns:<3} {name:16} {res['rps']:8.0f} req/s "
                            f"p50 {res['p50_ms']:7.3f} ms p99 {res['p99_ms']:7.3f} ms "
                            f"other load {res['other_cpus']:.2f} CPUs",
                            file=sys.stderr,
                            flush=True,
                        )
                        if res["errors"]:
                            raise RuntimeError(f"{name} {mode} c={conns}: {res['errors']} errors, {res['first_bad']}")
        return runs

    async def stop(self) -> dict[str, int]:
        codes = {}
        for tw in self.toolwatches:
            if tw.proc is not None and tw.proc.returncode is None:
                codes[str(tw.workdir.name)] = await tw.stop()
        for proc in self.others:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 30.0)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        for child in reversed(self.children):
            await child.stop()
        return codes


def record_setting() -> bool:
    """Whether toolwatch's settings have ``record`` (recording on/off)."""
    try:
        from toolwatch.schemas.settings import Settings
    except ImportError:
        return False
    return "record" in Settings.model_fields


def _rusage(who: int) -> float:
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


# -- the table ---------------------------------------------------------------------------------------
def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _spread(values: list[float | None]) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    if len(vals) == 1:
        return f"{med:.2f}"
    return f"{med:.2f} ({min(vals):.2f}–{max(vals):.2f})"


def table(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    med = statistics.median
    by = {(r["round"], r["mode"], r["c"], r["target"]): r for r in runs}
    names = [n for n in ORDER if any(r["target"] == n for r in runs)]
    lines = [
        "| mode | c | target | req/s | p50 ms | p99 ms | +p50 ms | +p99 ms | +p50 / bare | +p99 / bare "
        "| req/s / bare | RSS MB | recorder µs/exch | proxy CPU µs/req | other CPUs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rounds = range(args.rounds)
    for mode in args.modes:
        for c in args.connections:
            for name in names:
                rs = [by[(i, mode, c, name)] for i in rounds]
                ds = [by[(i, mode, c, "direct")] for i in rounds]
                bs = [by[(i, mode, c, "bare")] for i in rounds]
                ovh = {p: [r[f"{p}_ms"] - d[f"{p}_ms"] for r, d in zip(rs, ds, strict=True)] for p in ("p50", "p99")}
                bovh = {p: [b[f"{p}_ms"] - d[f"{p}_ms"] for b, d in zip(bs, ds, strict=True)] for p in ("p50", "p99")}
                cells = [mode, str(c), name, f"{med(r['rps'] for r in rs):.0f}"]
                cells += [f"{med(r['p50_ms'] for r in rs):.3f}", f"{med(r['p99_ms'] for r in rs):.3f}"]
                if name == "direct":
                    cells += ["—", "—"]
                else:
                    cells += [f"{med(ovh['p50']):.3f}", f"{med(ovh['p99']):.3f}"]
                if name in COMPARED:
                    for p in ("p50", "p99"):
                        cells.append(_spread([_ratio(a, b) for a, b in zip(ovh[p], bovh[p], strict=True)]))
                    cells.append(_spread([r["rps"] / b["rps"] for r, b in zip(rs, bs, strict=True)]))
                else:
                    cells += ["—", "—", "—"]
                peak = {k: max(r["rss_mb"].get(k, 0.0) for r in rs) for k in rs[0]["rss_mb"]}
                cells.append(" + ".join(f"{peak[k]:.0f}" for k in ("proxy", "recorder") if k in peak))
                rec = [r["recorder_cpu_us"] for r in rs if "recorder_cpu_us" in r]
                cells.append(f"{med(rec):.0f}" if rec else "—")
                cells.append("—" if name == "direct" else f"{med(r['proxy_cpu_us'] for r in rs):.0f}")
                cells.append(f"{med(r['other_cpus'] for r in rs):.2f}")
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def header(args: argparse.Namespace, bench: Bench, started: float) -> str:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        platform.machine(),
    )
    example = wrk_command("URL", args.connections[-1], args.duration, args.modes[0], "BODIES")
    argv = " ".join(sys.argv[1:])
    lines = [
        f"## toolwatch overhead with wrk ({args.rounds} rounds x {args.duration:g} s per run, "
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(started))})",
        "",
        f"- machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.platform()}",
        f"- command: `python bench/wrk_overhead.py{(' ' + argv) if argv else ''}`",
        f"- each run: `{fmt_cmd(example)}` (after a {args.warmup:g} s warm-up run)",
        "- figures are medians over rounds; ratios are toolwatch (or LiteLLM) over bare, median (min–max) "
        "over rounds, each from the same round; `+p50`/`+p99`: the target's percentile minus direct's; "
        "RSS: peak of proxy + recorder; recorder µs/exch: recorder CPU per stored exchange; other CPUs: "
        "CPU time of processes outside the benchmark per second of the run",
    ]
    lines += [f"- {note}" for note in bench.notes]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    need_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="toolwatch-wrk-"))
    bench = Bench(args, workdir)
    started = time.time()
    codes: dict[str, int] = {}
    try:
        await bench.start()
        runs = await bench.rounds()
        final = None
        tw = bench.targets["toolwatch"].tw
        if tw is not None:
            final = await drain(tw)
            async with aiohttp.ClientSession() as s:
                final = await status(s, tw.url)
    except BaseException:
        for tw in bench.toolwatches:
            print(f"{tw.workdir.name} log (last lines):\n{tw.log_tail()}", file=sys.stderr)
        raise
    finally:
        codes = await bench.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    text = header(args, bench, started) + "\n\n" + table(runs, args) + "\n"
    if final is not None:
        text += (
            f"\ntoolwatch: {final.get('calls_written')} calls stored of {final.get('exchanges_spooled')} spooled, "
            f"records_dropped {final.get('records_dropped')}, record_failures {final.get('record_failures')}; "
            f"exit codes after SIGTERM {codes}; measured for {time.time() - started:.0f} s\n"
        )
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_bytes(orjson.dumps({"args": vars(args), "runs": runs}, option=orjson.OPT_INDENT_2))
    ok = final is None or final.get("calls_written") == final.get("exchanges_spooled")
    return 0 if ok and all(c == 0 for c in codes.values()) else 1


def _csv(kind: type, allowed: set[str] | None = None) -> Any:
    def parse(text: str) -> list[Any]:
        items = [kind(x) for x in text.split(",") if x.strip()]
        if not items or (allowed is not None and not set(items) <= allowed):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {sorted(allowed or [])}")
        return items

    return parse


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds over every mode, connections and target")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of each measured wrk run")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of the unmeasured wrk run before each")
    ap.add_argument("--modes", type=_csv(str, {"json", "sse"}), default=["json", "sse"], help="json,sse")
    ap.add_argument("--connections", type=_csv(int), default=[1, 32], help="wrk connections, e.g. 1,32")
    ap.add_argument(
        "--toolwatch-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for toolwatch serve, e.g. TOOLWATCH_WORKERS=2 (repeatable)",
    )
    ap.add_argument("--out", help="also write the report (markdown) to this file")
    ap.add_argument("--json", help="also write every run's figures as JSON to this file")
    args = ap.parse_args()
    if args.rounds < 1 or args.duration < 1 or min(args.connections) < 1:
        ap.error("need --rounds >= 1, --duration >= 1 and connections >= 1")
    if any("=" not in kv for kv in args.toolwatch_env):
        ap.error("--toolwatch-env takes KEY=VALUE")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
