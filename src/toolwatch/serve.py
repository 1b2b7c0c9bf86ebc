"""``toolwatch serve``: the proxy in this process, the recorder in a supervised child process.

Shutdown order on SIGTERM/SIGINT: stop accepting, let in-flight requests finish, flush and seal the
spool, then tell the recorder to drain the spool into the store (bounded by ``shutdown_timeout``).
Whatever is not stored by then stays in the spool for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
from aiohttp import web

from toolwatch.dashboard import add_routes as add_dashboard
from toolwatch.proxy.access import is_loopback
from toolwatch.proxy.app import AccessLogger, RecorderLink, make_app
from toolwatch.proxy.listen import LimitedSite, raise_file_limit
from toolwatch.schemas.errors import ConfigError
from toolwatch.schemas.settings import Settings
from toolwatch.spool.locks import FileLock
from toolwatch.store.place import key_salt, server_file, spool_lock, store_dir, store_lock

log = logging.getLogger("toolwatch.serve")


class RecorderSupervisor:
    """Starts the recorder, restarts it when it dies, and stops it last."""

    def __init__(self, settings: Settings, link: RecorderLink) -> None:
        self.settings = settings
        self.link = link
        self.proc: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="recorder-supervisor")

    async def _run(self) -> None:
        backoff = 0.5
        while not self._stopping:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "toolwatch.recorder_process",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                start_new_session=True,
                # the recorder asks the kernel to kill it when this process dies (PR_SET_PDEATHSIG)
                env={
                    **os.environ,
                    "TOOLWATCH_PARENT_PID": str(os.getpid()),
                    "TOOLWATCH_INTERNAL_SECRET": self.link.secret,
                },
            )
            self.proc = proc
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(self.settings.model_dump_json().encode())
            await proc.stdin.drain()
            proc.stdin.close()
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), timeout=120.0)
                port = int(orjson.loads(line)["port"])
            except (TimeoutError, ValueError, KeyError, TypeError):
                port = 0
                if not self._stopping:
                    log.error("recorder did not report ready; restarting it")
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            if port:
                self.link.url = f"http://127.0.0.1:{port}"
                self.link.alive = True
                log.info("recorder running (pid %d)", proc.pid)
                backoff = 0.5
            await proc.stdout.read()  # until the recorder exits; it prints nothing more
            rc = await proc.wait()
            self.link.alive = False
            self.link.url = None
            if self._stopping:
                break
            self.link.restarts += 1
            log.error("recorder exited with code %s; restarting in %.1fs", rc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def stop(self) -> None:
        self._stopping = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=self.settings.shutdown_timeout + 10.0)
            except TimeoutError:
                log.error("recorder did not stop in time; killing it (its spool stays for the next start)")
                proc.kill()
                await proc.wait()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def supervised(settings: Settings, link: RecorderLink) -> Callable[[web.Application], AsyncIterator[None]]:
    """The recorder as the app's first resource: started before the spool, stopped after it is sealed,
    so its last drain sees every frame the proxy wrote."""

    async def recorder(app: web.Application) -> AsyncIterator[None]:
        supervisor = RecorderSupervisor(settings, link)
        supervisor.start()
        yield
        log.info("proxy stopped; draining the spool into the store")
        await supervisor.stop()

    return recorder


def check_exposure(settings: Settings) -> None:
    """Listening beyond loopback puts every prompt and key within reach of the network: not without a token."""
    if not is_loopback(settings.host) and not settings.admin_token:
        raise ConfigError(
            f"listening on {settings.host} (not loopback) needs an admin token: set TOOLWATCH_ADMIN_TOKEN"
            " (or admin_token in toolwatch.toml), or listen on 127.0.0.1"
        )


def take_ownership(settings: Settings) -> list[FileLock]:
    """One ``serve`` per store and per spool: take both locks before anything else is touched, or say who
    holds them. The locks go with this process, however it ends."""
    folder = store_dir(settings)
    if folder is not None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.spool_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    taken: list[FileLock] = []
    for what, path in (("store", store_lock(settings)), ("spool", spool_lock(settings))):
        lock = FileLock(path)
        if path in (t.path for t in taken):
            continue
        if not lock.acquire():
            for t in taken:
                t.release()
            other = ""
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                info = orjson.loads(server_file(settings).read_bytes())
                other = f" (pid {info['pid']}, listening on {info['url']})"
            raise ConfigError(
                f"another toolwatch serve is using this {what}{other}: {path.parent}."
                " Stop it first, or give this one its own --store and --spool."
            )
        taken.append(lock)
    return taken


async def serve(settings: Settings) -> int:
    check_exposure(settings)
    locks = take_ownership(settings)
    link = RecorderLink(secret=secrets.token_hex(16))
    app = make_app(settings, link, salt=key_salt(settings))
    add_dashboard(app)
    app.cleanup_ctx.insert(0, supervised(settings, link))
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        access_log_class=AccessLogger,
        access_log=logging.getLogger("toolwatch.access") if settings.access_log else None,
        shutdown_timeout=settings.shutdown_timeout,
    )
    info = server_file(settings)
    try:
        await runner.setup()
        raise_file_limit(settings.max_connections)
        site = LimitedSite(runner, settings.host, settings.port, max_connections=settings.max_connections)
        await site.start()
        host, port = runner.addresses[0][:2]
        url = f"http://{settings.host if ':' not in settings.host else f'[{settings.host}]'}:{port}"
        _write_server_file(info, url)
        log.info("toolwatch listening on %s (store %s)", url, _safe_dsn(settings.store))
        print(f"toolwatch listening on {url}", flush=True)

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down: finishing in-flight requests")
    finally:
        await runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            info.unlink()
        for lock in locks:
            lock.release()
    log.info("stopped")
    return 0


def _write_server_file(path: Path, url: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps({"url": url, "pid": os.getpid()}))
    os.replace(tmp, path)


def _safe_dsn(dsn: str) -> str:
    """The DSN without its user and password."""
    scheme, sep, rest = dsn.partition("://")
    return f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}"
