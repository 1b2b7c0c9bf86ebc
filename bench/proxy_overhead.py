"""Proxy overhead: toolwatch against a bare aiohttp passthrough, both in front of the same fake upstream.

    python bench/proxy_overhead.py [--requests N] [--concurrency C] [--rounds R] [--stream]

Processes: one fake OpenAI upstream, one bare passthrough, the real ``toolwatch serve`` (proxy plus
recorder on an embedded chdb store) and one load generator, each with its own interpreter. Every round
measures the upstream directly, through the bare passthrough and through toolwatch (in a rotating
order); each figure reported is the median over the rounds. Overhead is a target's latency percentile
minus the direct one of the same round. The target, from the issue: toolwatch's overhead at most 1.5x
the bare passthrough's at p50 and p99, and its throughput at least 0.8x.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from overhead_report import LIMITS, TARGETS, percentile, report, summarise

HERE = Path(__file__).resolve().parent
ROLES = HERE / "overhead_roles.py"
TICK = os.sysconf("SC_CLK_TCK")


class Child:
    """A helper process spoken to in JSON lines; it exits when its standard input closes."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc, self.name = proc, name

    @classmethod
    async def start(cls, name: str, *args: str) -> Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROLES),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,  # a load run answers with every latency on one line
        )
        return cls(proc, name)

    async def read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.name} exited (code {await self.proc.wait()})")
        return dict(orjson.loads(line))

    async def ask(self, cmd: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps(cmd) + b"\n")
        await self.proc.stdin.drain()
        return await self.read(timeout)

    async def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10.0)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class Toolwatch:
    """``toolwatch serve --port 0`` on a fresh chdb store, with the OpenAI mount on the fake upstream."""

    def __init__(self, workdir: Path, upstream_url: str, extra_env: dict[str, str]) -> None:
        self.workdir, self.upstream_url, self.extra_env = workdir, upstream_url, extra_env
        self.log_path = workdir / "toolwatch.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> None:
        exe = shutil.which("toolwatch", path=str(Path(sys.executable).parent))
        cmd = [exe] if exe else [sys.executable, "-m", "toolwatch"]
        env = {**os.environ, "TOOLWATCH_UPSTREAM_OPENAI_URL": self.upstream_url, **self.extra_env}
        with open(self.log_path, "wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *cmd,
                "serve",
                "--port",
                "0",
                "--store",
                f"chdb://{self.workdir / 'store'}",
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=env,
                cwd=self.workdir,
            )
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 120.0)).decode()
        if not line.startswith("toolwatch listening on "):
            raise RuntimeError(f"toolwatch did not start: {line!r}\n{self.log_tail()}")
        self.url = line.split()[-1]

    async def status(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as s, s.get(f"{self.url}/_toolwatch/api/status") as r:
            return dict(await r.json())

    async def wait_recorded(self, expected: int, timeout: float = 120.0) -> dict[str, Any]:
        """The status once the recorder stored ``expected`` calls (or the last one seen at the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            st = await self.status()
            done = st.get("recorder_alive") and (st.get("calls_written") or 0) >= expected
            if done or time.monotonic() > deadline:
                return st
            await asyncio.sleep(0.5)

    def recorder_pid(self) -> int | None:
        assert self.proc is not None
        with contextlib.suppress(OSError, ValueError):
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            return int(children[0]) if children else None
        return None

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), 90.0)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            return -9

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def log_problems(self) -> list[str]:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
            return [ln for ln in text.splitlines() if " WARNING " in ln or " ERROR " in ln]
        return []


def cpu_seconds(pid: int | None) -> float:
    """User plus system CPU time of a process (all its threads) so far; 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine ran so far (user, nice, system), in seconds.

    Interrupt and softirq time are left out: loopback networking is accounted there, and it is the
    benchmark's own traffic, not other load.
    """
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system = (int(f) for f in fields[:3])
    return (user + nice + system) / TICK


def run_figures(
    args: argparse.Namespace, res: dict[str, Any], warm: dict[str, Any], cpu: dict[str, float], busy: float
) -> dict[str, Any]:
    lat = sorted(res["latencies"])
    return {
        "p50_ms": percentile(lat, 50) * 1000.0,
        "p90_ms": percentile(lat, 90) * 1000.0,
        "p99_ms": percentile(lat, 99) * 1000.0,
        "mean_ms": statistics.fmean(lat) * 1000.0,
        "throughput_rps": args.requests / res["wall"],
        "errors": res["errors"] + warm["errors"],
        "first_error": res["first_error"] or warm["first_error"],
        "cpu_us_per_request": {k: v / args.requests * 1e6 for k, v in cpu.items()},
        # CPUs kept busy by everything else on the machine: the noise this run was measured under.
        "other_load_cpus": max(0.0, busy - sum(cpu.values())) / res["wall"],
    }


class Bench:
    """The processes of one benchmark run, started in ``start`` and always ended in ``stop``."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.children: list[Child] = []
        self.tw: Toolwatch | None = None
        self.urls: dict[str, str] = {}
        self.pids: dict[str, int | None] = {}
        self.body_sizes: list[int] = []
        self.sent_to_toolwatch = 0

    async def _child(self, role: str, *args: str) -> tuple[Child, dict[str, Any]]:
        child = await Child.start(role, role, *args)
        self.children.append(child)
        return child, await child.read(60.0)

    async def start(self) -> None:
        upstream, hello = await self._child("upstream")
        up_url = hello["url"]
        bare, hello = await self._child("bare", up_url)
        bare_url = hello["url"]
        self.tw = tw = Toolwatch(self.workdir, up_url, dict(kv.split("=", 1) for kv in self.args.toolwatch_env))
        await tw.start()
        load, hello = await self._child("load")
        self.body_sizes = hello["body_sizes"]
        await tw.wait_recorded(0)  # the recorder is up, so its CPU is measured from the first run
        self.load = load
        self.urls = {
            "direct": f"{up_url}/v1/chat/completions",
            "bare": f"{bare_url}/v1/chat/completions",
            "toolwatch": f"{tw.url}/openai/v1/chat/completions",
        }
        self.pids = {
            "upstream": upstream.proc.pid,
            "bare": bare.proc.pid,
            "load": load.proc.pid,
            "toolwatch": tw.proc.pid if tw.proc else None,
            "recorder": tw.recorder_pid(),
        }

    async def measure(self, target: str) -> dict[str, Any]:
        """Warm up, then one measured run; CPU figures are of the measured run only.

        For toolwatch the recorder first stores the warm-up, and its CPU is read once it has stored the
        measured requests too: its backlog never runs during another run, and all of its work is counted.
        """
        args = self.args
        cmd = {"url": self.urls[target], "concurrency": args.concurrency, "stream": args.stream}
        warm = await self.load.ask({**cmd, "n": args.warmup}, 600.0)
        await self._drain(target, args.warmup)
        before = {k: cpu_seconds(p) for k, p in self.pids.items()}
        busy = machine_busy_seconds()
        res = await self.load.ask({**cmd, "n": args.requests}, 600.0)
        busy = machine_busy_seconds() - busy
        cpu = {k: cpu_seconds(p) - before[k] for k, p in self.pids.items()}
        await self._drain(target, args.requests)
        cpu["recorder"] = cpu_seconds(self.pids["recorder"]) - before["recorder"]
        return run_figures(args, res, warm, cpu, busy)

    async def _drain(self, target: str, sent: int) -> None:
        if target == "toolwatch":
            assert self.tw is not None
            self.sent_to_toolwatch += sent
            await self.tw.wait_recorded(self.sent_to_toolwatch)

    async def rounds(self) -> list[dict[str, dict[str, Any]]]:
        args, rounds = self.args, []
        for i in range(args.rounds):
            results = {}
            for t in TARGETS[i % 3 :] + TARGETS[: i % 3]:  # rotated, so no target always runs first
                results[t] = r = await self.measure(t)
                print(
                    f"round {i + 1}/{args.rounds} {t:9} p50 {r['p50_ms']:7.3f} ms  p99 {r['p99_ms']:7.3f} ms "
                    f"{r['throughput_rps']:6.0f} req/s  other load {r['other_load_cpus']:.2f} CPUs",
                    file=sys.stderr,
                    flush=True,
                )
                if r["errors"]:
                    raise RuntimeError(f"{t}: {r['errors']} bad responses, e.g. {r['first_error']}")
            rounds.append(results)
        return rounds

    async def stop(self) -> None:
        for child in reversed(self.children):
            await child.stop()
        if self.tw is not None and self.tw.proc is not None and self.tw.proc.returncode is None:
            await self.tw.stop()


STATUS_KEYS = (
    "exchanges_spooled",
    "calls_written",
    "records_dropped",
    "record_failures",
    "build_errors",
    "store_errors",
    "damaged_frames",
    "recorder_restarts",
)


async def run(args: argparse.Namespace) -> int:
    machine = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_before": os.getloadavg()[0],
    }
    workdir = Path(tempfile.mkdtemp(prefix="toolwatch-bench-"))
    bench = Bench(args, workdir)
    try:
        await bench.start()
        assert bench.tw is not None
        started = time.monotonic()
        rounds = await bench.rounds()
        elapsed = time.monotonic() - started
        expected = bench.sent_to_toolwatch  # warm-ups included
        status = await bench.tw.wait_recorded(expected)
        rc = await bench.tw.stop()
        problems = bench.tw.log_problems()
    except BaseException:
        if bench.tw is not None:
            print(f"toolwatch log (last lines):\n{bench.tw.log_tail()}", file=sys.stderr)
        raise
    finally:
        await bench.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    summary = summarise(rounds)
    machine["request_body_bytes"] = [min(bench.body_sizes), max(bench.body_sizes)]
    print(report(summary, machine, args))
    recorded = {k: status.get(k) for k in STATUS_KEYS}
    print(
        f"\ntoolwatch recorded: calls_written {recorded['calls_written']} of {expected} sent, "
        f"records_dropped {recorded['records_dropped']}, record_failures {recorded['record_failures']}, "
        f"build_errors {recorded['build_errors']}; exit code after SIGTERM {rc}"
    )
    if problems:
        print(f"toolwatch log had {len(problems)} warning/error lines, first: {problems[0]}")
    print(f"measured for {elapsed:.0f}s")
    name = "proxy_overhead-stream.json" if args.stream else "proxy_overhead.json"
    out = Path(args.out) if args.out else HERE / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": machine,
        "args": vars(args),
        "summary": summary,
        "limits": LIMITS,
        "rounds": rounds,
        "toolwatch_status": recorded,
        "toolwatch_exit_code": rc,
        "measured_seconds": elapsed,
    }
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"results: {out}")
    return 0 if recorded["calls_written"] == expected and rc == 0 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=3000, help="measured requests per target and round")
    ap.add_argument("--warmup", type=int, default=300, help="unmeasured requests before each measured run")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    ap.add_argument("--rounds", type=int, default=10, help="rounds over all targets; medians are reported")
    ap.add_argument("--stream", action="store_true", help="ask for SSE streams instead of JSON replies")
    ap.add_argument(
        "--toolwatch-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for toolwatch serve, e.g. TOOLWATCH_ACCESS_LOG=false (repeatable)",
    )
    ap.add_argument("--out", help="JSON results path (default bench/results/proxy_overhead[-stream].json)")
    args = ap.parse_args()
    if any("=" not in kv for kv in args.toolwatch_env):
        ap.error("--toolwatch-env takes KEY=VALUE")
    if args.requests < 100 or args.concurrency < 1 or args.rounds < 1 or args.warmup < 0:
        ap.error("need --requests >= 100, --concurrency >= 1, --rounds >= 1, --warmup >= 0")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
