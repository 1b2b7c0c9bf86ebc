"""Processes and measurements shared by the wrk benchmarks.

The fake upstream and the bare passthrough are ``overhead_roles.py``'s (one process each, uvloop), and
``toolwatch serve`` is started by ``proxy_overhead.Toolwatch``: every wrk benchmark measures the same
processes as ``proxy_overhead.py``, only with wrk as the load generator. wrk runs as
``wrk -t1 -cC -dDs --timeout 30s -s bench/wrk/chat.lua URL -- MODE BODIES`` (see ``wrk_command``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

WRK_DIR = Path(__file__).resolve().parent
BENCH = WRK_DIR.parent
REPO = BENCH.parent
for _p in (str(REPO), str(BENCH)):  # overhead_roles imports tests.fakes; proxy_overhead imports its siblings
    if _p not in sys.path:
        sys.path.insert(0, _p)

from overhead_roles import REPLY, bodies  # noqa: E402
from proxy_overhead import ROLES, Child, Toolwatch, cpu_seconds, machine_busy_seconds  # noqa: E402

__all__ = [
    "REPLY",
    "Child",
    "RssPeak",
    "Toolwatch",
    "cpu_of",
    "cpu_seconds",
    "drain",
    "machine_busy_seconds",
    "need_wrk",
    "rss_mb",
    "rss_of",
    "run_wrk",
    "settle",
    "spawn",
    "status",
    "toolwatch_pids",
    "wrk_command",
    "write_bodies",
]

WRK_TIMEOUT = "30s"


def child_env() -> dict[str, str]:
    """The environment of helper processes: the repository on PYTHONPATH (``tests.fakes`` lives there)."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), path) if p)}


async def spawn(name: str, *args: str, log: Path, script: Path = ROLES) -> tuple[Child, dict[str, Any]]:
    """Start a role of ``overhead_roles.py`` (or ``script``) and read its first JSON line ({"url": ...}).

    Its stderr goes to ``log``: servers log every connection wrk cuts at the end of a run.
    """
    with open(log, "ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            name,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=child_env(),
        )
    child = Child(proc, name)
    return child, await child.read(60.0)


def write_bodies(folder: Path) -> dict[str, Path]:
    """``overhead_roles.bodies`` (2.8-4.6 KB chat-completions bodies with four tools), one per line."""
    out = {}
    for mode, stream in (("json", False), ("sse", True)):
        path = folder / f"bodies-{mode}.txt"
        path.write_bytes(b"\n".join(bodies(stream)) + b"\n")
        out[mode] = path
    return out


def need_wrk() -> str:
    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (Debian/Ubuntu package wrk)")
    return exe


def wrk_command(
    url: str,
    connections: int,
    duration: float,
    mode: str,
    bodies_file: Path | str = "-",
    *,
    threads: int = 1,
    rate: float | None = None,
) -> list[str]:
    """The wrk command line: chat.lua, or paced.lua at ``rate`` requests per second per thread."""
    script = WRK_DIR / ("paced.lua" if rate else "chat.lua")
    cmd = [need_wrk(), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s"]
    cmd += ["--timeout", WRK_TIMEOUT, "-s", str(script), url, "--", mode, str(bodies_file)]
    if rate:
        cmd.append(f"{rate / threads:.3f}")
    return cmd


async def run_wrk(cmd: list[str]) -> dict[str, Any]:
    """Run wrk and return the WRK_JSON line of ``chat.lua``'s ``done``, plus ``errors`` (all kinds)."""
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("WRK_JSON "):
            res: dict[str, Any] = orjson.loads(line.removeprefix("WRK_JSON "))
            res["errors"] = sum(
                res[k]
                for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts", "bad_bodies")
            )
            res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
            return res
    tail = (err.decode(errors="replace") + out.decode(errors="replace"))[-800:]
    raise RuntimeError(f"wrk gave no WRK_JSON line (exit {proc.returncode}): {tail}")


def rss_mb(pid: int | None) -> float:
    """Resident memory of a process in MB (psutil when installed, else /proc/<pid>/status); 0 if gone."""
    if pid is None:
        return 0.0
    try:
        import psutil  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return 0.0
    with contextlib.suppress(Exception):
        return float(psutil.Process(pid).memory_info().rss) / (1 << 20)
    return 0.0


def cpu_of(pids: Iterable[int]) -> float:
    """User plus system CPU seconds of some processes so far."""
    return sum(cpu_seconds(p) for p in pids)


def rss_of(pids: Iterable[int]) -> float:
    """The summed RSS of some processes, in MB."""
    return sum(rss_mb(p) for p in pids)


class RssPeak:
    """Samples the RSS of groups of processes (summed per group) every ``every`` seconds while in the
    ``async with`` block; ``peak`` holds each group's highest sum."""

    def __init__(self, pids: dict[str, list[int]], every: float = 0.25) -> None:
        self.pids, self.every = pids, every
        self.peak: dict[str, float] = dict.fromkeys(pids, 0.0)
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        for name, pids in self.pids.items():
            self.peak[name] = max(self.peak[name], rss_of(pids))

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every)

    async def __aenter__(self) -> RssPeak:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.sample()


async def status(session: aiohttp.ClientSession, base_url: str) -> dict[str, Any]:
    async with session.get(f"{base_url}/_toolwatch/api/status") as r:
        return dict(await r.json())


async def drain(tw: Toolwatch, timeout: float = 180.0) -> dict[str, Any]:
    """Wait until toolwatch's recorder has stored every exchange the proxy spooled; its last status."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            st = await status(session, tw.url)
            spooled, written = st.get("exchanges_spooled") or 0, st.get("calls_written") or 0
            if st.get("recorder_alive") and not st.get("in_flight") and written >= spooled:
                return st
            if time.monotonic() > deadline:
                raise RuntimeError(f"the recorder did not catch up in {timeout:.0f}s: {written} of {spooled} stored")
            await asyncio.sleep(0.2)


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (of all its threads)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                out += [int(c) for c in (task / "children").read_text().split()]
    return out


def toolwatch_pids(tw: Toolwatch) -> dict[str, list[int]]:
    """``proxy``: serve and its proxy workers (``--workers N``); ``recorder``: its recorder process."""
    assert tw.proc is not None
    pids: dict[str, list[int]] = {"proxy": [tw.proc.pid], "recorder": []}
    for child in children(tw.proc.pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        pids["recorder" if b"recorder_process" in cmdline else "proxy"].append(child)
    return pids


async def settle(tw: Toolwatch, timeout: float = 120.0) -> None:
    """Wait until the recorder has opened the store and its start-up work is over (under 5 % of a CPU
    for a second): opening the embedded store and the jobs after it take several CPU seconds, which would
    otherwise be charged to the first measured run."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while not (await status(session, tw.url)).get("store_reachable"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the recorder did not open the store in {timeout:.0f}s")
            await asyncio.sleep(0.5)
    while time.monotonic() < deadline:
        pids = toolwatch_pids(tw)["recorder"]
        before = sum(cpu_seconds(p) for p in pids)
        await asyncio.sleep(1.0)
        if sum(cpu_seconds(p) for p in pids) - before < 0.05:
            return


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fmt_cmd(cmd: Iterable[str], names: dict[str, str] | None = None) -> str:
    """A command line for the report: the repository's paths relative to it, and each value of ``names``
    (a temporary URL or file) replaced by its key."""
    text = " ".join(str(c) for c in cmd).replace(f"{REPO}/", "").replace(shutil.which("wrk") or "\0", "wrk")
    for key, value in (names or {}).items():
        text = text.replace(value, key)
    return text
