"""An in-process toolwatch for tests: the proxy app on a loopback port, the spool, and the recorder in a
thread writing to the embedded store (one shared chdb path per test process, one database per test).

The real ``toolwatch serve`` puts the recorder in its own process; tests that need that (signals,
restarts, the CLI) start it as a subprocess instead.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from toolwatch.config import Settings, load_settings
from toolwatch.proxy.app import SPOOL, make_app
from toolwatch.recorder.build import BuildOptions
from toolwatch.recorder.loop import Recorder
from toolwatch.spool.reader import SpoolReader
from toolwatch.store.handle import StoreHandle
from toolwatch.store.writer import ClickHouseSink


def test_settings(store_path: Path, spool: Path, upstream_url: str | None = None, **over: Any) -> Settings:
    env = {}
    if upstream_url:
        env = {"TOOLWATCH_UPSTREAM_OPENAI_URL": upstream_url, "TOOLWATCH_UPSTREAM_ANTHROPIC_URL": upstream_url}
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

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until every exchange appended so far is written to the store."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spool, rec = self.spool, self.recorder
            if spool._pending_bytes == 0 and rec.stats.frames_read == spool.appended and not rec.batch.rows():
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
