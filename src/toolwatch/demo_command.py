"""``toolwatch demo``: a scripted upstream, ``toolwatch serve`` on a throwaway store, and agents driving
traffic through it, so every feature shows with live data and no API key.

``serve`` runs as a subprocess, exactly as a user runs it (its recorder included), pointed at the demo's
upstream by the same ``TOOLWATCH_UPSTREAM_*`` variables a user would set. The store lives in a temporary
folder, removed at the end unless ``--keep`` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from toolwatch.demo import DemoStats, DemoUpstream, run_demo
from toolwatch.schemas.errors import ToolwatchError


async def demo(
    *,
    port: int = 0,
    seed: int = 7,
    sessions: int | None = None,
    duration: float | None = None,
    keep: Path | None = None,
    latency: float = 1.0,
    as_json: bool = False,
) -> int:
    """``latency`` scales the scripted answer times; at 0 the agents also stop pausing (a fast, bounded run).
    ``as_json``: one JSON line once it listens, one at the end, instead of the banner and the summary."""
    folder = keep or Path(tempfile.mkdtemp(prefix="toolwatch-demo-"))
    stats = DemoStats()
    pace = {"pace": 0.0, "tool_delay": 0.0} if latency == 0 else {}
    async with DemoUpstream(seed=seed, latency=latency) as upstream:
        serve = await _start_serve(folder, port, upstream.toolwatch_env())
        try:
            assert serve.stdout is not None
            line = (await asyncio.wait_for(serve.stdout.readline(), 120)).decode()
            if not line.startswith("toolwatch listening on "):
                raise ToolwatchError("toolwatch serve did not start; run it alone to see why")
            url = line.split()[-1]
            if as_json:
                started = {"url": url, "dashboard": f"{url}/_toolwatch/", "store": f"chdb://{folder / 'store'}"}
                print(json.dumps({**started, "kept": keep is not None}), flush=True)
            else:
                print(_banner(url, folder, keep is not None), flush=True)
            work = asyncio.ensure_future(
                run_demo(url, seed=seed, sessions=sessions, duration=duration, stats=stats, **pace)  # type: ignore[arg-type]
            )
            try:
                await work
            finally:
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await work
        finally:
            await _stop(serve)
            if keep is None:
                shutil.rmtree(folder, ignore_errors=True)
    if as_json:
        done = {"sessions": stats.sessions, "llm_calls": stats.llm_calls, "tool_calls": stats.tool_calls}
        print(json.dumps({**done, "store": f"chdb://{folder / 'store'}", "kept": keep is not None}), flush=True)
        return 0
    print(
        f"demo done: {stats.sessions} sessions, {stats.llm_calls} LLM calls, {stats.tool_calls} tool calls"
        + (f"; the store stays in {folder}" if keep is not None else ""),
        flush=True,
    )
    return 0


async def _start_serve(folder: Path, port: int, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "toolwatch",
        "serve",
        "--port",
        str(port),
        "--store",
        f"chdb://{folder / 'store'}",
        "--spool",
        str(folder / "spool"),
        env={
            **os.environ,
            **env,
            "TOOLWATCH_BATCH_INTERVAL": "0.5",
            "TOOLWATCH_SEGMENT_MAX_AGE": "1",
            "TOOLWATCH_LOG_LEVEL": os.environ.get("TOOLWATCH_LOG_LEVEL", "warning"),
        },
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,  # Ctrl-C reaches the demo, which stops serve in order
    )


async def _stop(serve: asyncio.subprocess.Process) -> None:
    if serve.returncode is None:
        serve.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(serve.wait(), 60)
        except TimeoutError:
            serve.kill()
            await serve.wait()


def _banner(url: str, folder: Path, kept: bool) -> str:
    return "\n".join(
        [
            f"toolwatch demo: agents are sending traffic through {url}",
            f"  dashboard   {url}/_toolwatch/",
            f"  report      toolwatch report --store chdb://{folder / 'store'}",
            f"  store       {folder}" + ("" if kept else " (removed at the end; --keep DIR keeps it)"),
            "  Ctrl-C stops the demo.",
        ]
    )
