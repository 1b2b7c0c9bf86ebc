"""An in-process toolwatch for tests: the proxy app on a loopback port, the spool, and the recorder in a
thread writing to the embedded store (one shared chdb path per test process, one database per test).

The real ``toolwatch serve`` puts the recorder in its own process; tests that need that (signals,
restarts, the CLI) start it as a subprocess instead.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import openai
from aiohttp import web

from toolwatch.dashboard import add_routes as add_dashboard
from toolwatch.proxy.app import SPOOL, make_app
from toolwatch.recorder.build import BuildOptions
from toolwatch.recorder.loop import Recorder
from toolwatch.schemas.settings import Settings, load_settings
from toolwatch.spool.reader import SpoolReader
from toolwatch.store.handle import StoreHandle
from toolwatch.store.writer import ClickHouseSink


def make_settings(store_path: Path, spool: Path, upstream_url: str | None = None, **over: Any) -> Settings:
    env = {}
    if upstream_url:
        env = {
            "TOOLWATCH_UPSTREAM_OPENAI_URL": upstream_url,
            "TOOLWATCH_UPSTREAM_ANTHROPIC_URL": upstream_url,
        }
    overrides = {
        "store": f"chdb://{store_path}",
        "database": f"t_{uuid.uuid4().hex[:12]}",
        "spool": str(spool),
        "batch_interval": 0.05,
        "segment_max_age": 0.2,
        **over,
    }
    return load_settings(None, environ=env, overrides=overrides)


class Harness:
    def __init__(self, settings: Settings, store: StoreHandle | None = None, start_recorder: bool = True) -> None:
        self.settings = settings
        self.store = store or StoreHandle(settings)
        self.recorder = Recorder(
            SpoolReader(settings.spool_path),
            ClickHouseSink(self.store),
            options=BuildOptions(result_max_bytes=settings.result_max_bytes),
            batch_rows=settings.batch_rows,
            batch_interval=settings.batch_interval,
        )
        self._start_recorder = start_recorder
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> Harness:
        self.app = make_app(self.settings)
        add_dashboard(self.app)
        self.runner = web.AppRunner(self.app, handler_cancellation=True, shutdown_timeout=2.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        if self._start_recorder:
            self.start_recorder()
        return self

    def start_recorder(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.recorder.run, args=(self._stop, 10.0, 0.01), daemon=True)
        self._thread.start()

    async def stop_recorder(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)
            self._thread = None

    @property
    def spool(self) -> Any:
        return self.app[SPOOL]

    async def flush(self, expect: int = 0, timeout: float = 30.0) -> None:
        """Wait until every exchange appended so far (and at least ``expect``) is written to the store."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spool, rec = self.spool, self.recorder
            if spool.appended >= expect and rec.stats.frames_read == spool.appended and not rec.batch.rows():
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"recorder did not catch up: {self.recorder.stats}")

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        return self.store.run(lambda c: c.query(sql, parameters=params).result_rows)

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        def run(c: Any) -> list[dict[str, Any]]:
            r = c.query(sql, parameters=params)
            return [dict(zip(r.column_names, row, strict=True)) for row in r.result_rows]

        return self.store.run(run)

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        await self.stop_recorder()
        self.store.close()


class ServeProcess:
    """``toolwatch serve`` as a subprocess, the way users run it (proxy + supervised recorder process)."""

    def __init__(self, data: Path, upstream_url: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.data = data
        self.store = f"chdb://{data / 'store'}"
        self.args = args
        self.env = {
            **os.environ,
            "TOOLWATCH_UPSTREAM_OPENAI_URL": upstream_url,
            "TOOLWATCH_UPSTREAM_ANTHROPIC_URL": upstream_url,
            "TOOLWATCH_BATCH_INTERVAL": "0.1",
            "TOOLWATCH_SEGMENT_MAX_AGE": "0.2",
            "TOOLWATCH_SHUTDOWN_TIMEOUT": "10",
            **(env or {}),
        }
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.stderr = b""
        self._stderr_task: asyncio.Task[None] | None = None

    async def start(self) -> ServeProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "toolwatch",
            "serve",
            "--port",
            "0",
            "--store",
            self.store,
            "--spool",
            str(self.data / "spool"),
            *self.args,
            env=self.env,
            cwd=str(self.data),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        assert line.startswith(b"toolwatch listening on "), line
        self.url = line.decode().split()[-1]
        self._stderr_task = asyncio.get_running_loop().create_task(self._collect_stderr())
        return self

    async def _collect_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.stderr += line

    @property
    def token(self) -> str:
        return self.env.get("TOOLWATCH_ADMIN_TOKEN", "")

    async def get(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with aiohttp.ClientSession() as s, s.get(self.url + path, headers=headers) as r:
            return r.status, await r.json()

    async def get_raw(self, path: str) -> tuple[int, str]:
        """Without the admin token."""
        async with aiohttp.ClientSession() as s, s.get(self.url + path) as r:
            return r.status, await r.text()

    async def status(self) -> dict[str, Any]:
        return (await self.get("/_toolwatch/api/status"))[1]  # type: ignore[no-any-return]

    async def wait_for(self, predicate: Any, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:
            st = await self.status()
            if predicate(st):
                return st
            await asyncio.sleep(0.1)
        raise TimeoutError(f"condition not met; last status {st}; stderr:\n{self.stderr.decode()[-3000:]}")

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        rc = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._stderr_task is not None:
            await self._stderr_task
        return rc

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._stderr_task is not None:
            await self._stderr_task


async def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "toolwatch",
        *args,
        cwd=str(cwd) if cwd else None,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


class StoreHolder:
    """Another process holding an embedded store path open: toolwatch finds the store locked."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> StoreHolder:
        code = (
            "import sys, clickhouse_connect; c = clickhouse_connect.get_client(dsn=sys.argv[1]);"
            " print('held', flush=True); sys.stdin.read()"
        )
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            f"chdb://{self.path}",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        assert (await asyncio.wait_for(self.proc.stdout.readline(), 60)).strip() == b"held"
        return self

    async def release(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            await asyncio.wait_for(self.proc.wait(), 30)


TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


async def send_openai(url: str, n: int, body_pad: int = 0) -> None:
    async with openai.AsyncOpenAI(base_url=f"{url}/openai/v1", api_key="sk-x", max_retries=0) as client:
        for i in range(n):
            r = await client.chat.completions.create(
                model="gpt-test",
                messages=[{"role": "user", "content": f"question {i} " + "x" * body_pad}],
                tools=TOOLS,  # type: ignore[arg-type]
            )
            assert r.choices[0].message.tool_calls[0].function.name == "lookup"  # type: ignore[index,union-attr]
