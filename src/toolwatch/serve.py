"""``toolwatch serve``: the proxy in this process, the recorder in a supervised child process.

Start: the store's and the spool's locks, then the listening port, before anything else starts; a problem
with any of them is one line naming what to do (``ToolwatchError``), exit code 2. Then the banner
(``banner.py``) on standard output.

Stop, on SIGINT (Ctrl-C) or SIGTERM, all within ``shutdown_timeout`` of the signal: stop accepting, let
in-flight requests finish (cut off the rest a moment before the end, recorded as such), seal the spool,
then let the recorder drain it into the store until the end; what it has not stored stays in the spool
for the next start. Standard error says what is waited for. A second signal stops at once: the recorder
is told to stop, and what is not stored yet stays in the spool (every answered exchange is in it already);
a third one exits without waiting for anything.

With ``--workers N`` (N > 1) the proxy runs in N worker processes instead (``ServingWorkers``): serve
binds the port, and each worker serves on the inherited socket with a spool writer of its own; serve
itself accepts nothing, supervises the workers and the recorder, and stops them in the same order: the
workers finish their requests in flight and seal their spools, then the recorder drains them all.

Exit codes: 0 after a stop within ``shutdown_timeout``; 2 when serve cannot start (``errors.py``); 128 +
the signal's number when a second signal forced the stop (130 for Ctrl-C, 143 for SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import orjson
from aiohttp import web

from toolwatch.banner import banner
from toolwatch.dashboard import add_routes as add_dashboard
from toolwatch.logs import say, size
from toolwatch.proxy.access import is_loopback
from toolwatch.proxy.app import FORWARDER, AccessLogger, RecorderLink, make_app
from toolwatch.proxy.listen import Bound, LimitedSite, bind, listening, raise_file_limit, settle_heap
from toolwatch.schemas.errors import ConfigError, SpoolError, StoreError, ToolwatchError
from toolwatch.schemas.settings import Settings
from toolwatch.spool.locks import FileLock
from toolwatch.spool.writer import seal_left_open
from toolwatch.store.place import key_salt, server_file, spool_lock, store_dir, store_lock
from toolwatch.supervisor import CUT_OFF_GRACE, FORCED_RECORDER_WAIT, ProxyWorkers, RecorderSupervisor, supervised

log = logging.getLogger("toolwatch.serve")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
RESERVE = 2.0  # at most this much of shutdown_timeout is kept for the recorder's last drain
SHARED_METRICS = "proxy-metrics"  # in the spool folder: the workers' /metrics files (prometheus multiprocess)


class Stopper:
    """Counts stop signals once serve starts its server: the first asks for a stop within
    ``shutdown_timeout``, the second for one at once (``on_force``), the third exits right away."""

    def __init__(self, on_force: Callable[[int], None], on_exit: Callable[[int], None]) -> None:
        self.requested = asyncio.Event()
        self.signals = 0
        self.on_force = on_force
        self.on_exit = on_exit
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._received, sig)

    def _received(self, sig: int) -> None:
        self.signals += 1
        if self.signals == 1:
            self.requested.set()
        elif self.signals == 2:
            self.on_force(sig)
        else:
            self.on_exit(sig)

    def remove(self) -> None:
        """Past the stop, until the process ends, a signal ends it at once (never a traceback)."""
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
            signal.signal(sig, lambda number, _frame: os._exit(128 + number))


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
        _make_folder(folder, "store", "--store chdb:///another/path", StoreError)
    _make_folder(settings.spool_path, "spool", "--spool /another/path", SpoolError)
    taken: list[FileLock] = []
    for what, path in (("store", store_lock(settings)), ("spool", spool_lock(settings))):
        lock = FileLock(path)
        if path in (t.path for t in taken):
            continue
        try:
            acquired = lock.acquire()
        except OSError as e:
            for t in taken:
                t.release()
            raise (StoreError if what == "store" else SpoolError)(
                f"cannot use the {what} folder {path.parent}: {e.strerror or e}"
            ) from e
        if not acquired:
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


def _make_folder(path: Path, what: str, instead: str, error: type[ToolwatchError]) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker is not None else (e.strerror or str(e))
        raise error(f"cannot create the {what} folder {path}: {why}; choose another ({instead})") from e


async def serve(settings: Settings, *, debug: bool = False) -> int:
    """Run until stopped; the exit code. ``debug`` (``--debug``): both processes log at debug level (the
    traceback of an error is the CLI's to show)."""
    if debug:
        settings = settings.model_copy(update={"log_level": "debug"})
        logging.getLogger().setLevel(logging.DEBUG)
    return await _serve(settings)


async def _serve(settings: Settings) -> int:
    check_exposure(settings)
    locks = take_ownership(settings)
    bound: Bound | None = None
    try:
        bound = await bind(settings.host, settings.port)
        seal_left_open(settings.spool_path)
        if settings.workers > 1:
            return await ServingWorkers(settings, bound).run()
        return await Serving(settings, bound).run()
    finally:
        if bound is not None:
            bound.close()
        for lock in locks:
            lock.release()


class Serving:
    """One run of the proxy on its bound port: start, wait for a stop signal, stop in time."""

    def __init__(self, settings: Settings, bound: Bound) -> None:
        self.settings = settings
        self.bound = bound
        self.link = RecorderLink(secret=secrets.token_hex(16))
        self.supervisor = RecorderSupervisor(settings, self.link)
        self.app = make_app(settings, self.link, salt=key_salt(settings))
        add_dashboard(self.app)
        if settings.record:  # record = false: no recorder
            self.app.cleanup_ctx.insert(0, supervised(self.supervisor))
        self.runner = proxy_runner(self.app, settings)
        self.info = server_file(settings)
        self._forcing: asyncio.Task[None] | None = None

    async def run(self) -> int:
        stopper = Stopper(self._force, self._exit_now)
        try:
            await self.runner.setup()
            raise_file_limit(self.settings.max_connections)
            site = LimitedSite(
                self.runner,
                self.settings.host,
                self.bound.port,
                max_connections=self.settings.max_connections,
                bound=self.bound,
            )
            await site.start()
            settle_heap()
            port = self.bound.port
            host = self.settings.host
            url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
            _write_server_file(self.info, url)
            print(banner(url, self.settings), flush=True)
            await stopper.requested.wait()
            await self._stop(site)
        finally:
            await self.runner.cleanup()
            with contextlib.suppress(FileNotFoundError):
                self.info.unlink()
            stopper.remove()
        say_stopped(self.supervisor.left_bytes)
        return 0

    async def _stop(self, site: LimitedSite) -> None:
        """Stop accepting, wait for in-flight requests, and give the rest of the time to the recorder."""
        loop = asyncio.get_running_loop()
        timeout = self.settings.shutdown_timeout
        deadline = loop.time() + timeout
        self.supervisor.deadline = deadline
        say(f"stopping within {timeout:g}s (shutdown_timeout); Ctrl-C again stops at once, nothing answered is lost")
        await finish_requests(self.app, self.runner, site, deadline, timeout)

    def _force(self, sig: int) -> None:
        """The second signal: stop at once, keeping what is not stored yet in the spool."""
        in_flight = self.app[FORWARDER].in_flight if FORWARDER in self.app else 0
        cut = f"{in_flight} request{'s' if in_flight != 1 else ''} in flight cut off; " if in_flight else ""
        say(f"stopping at once: {cut}what is not stored yet stays in the spool for the next start")
        self._forcing = asyncio.get_running_loop().create_task(self._forced(sig), name="forced-stop")

    async def _forced(self, sig: int) -> None:
        await self.supervisor.stop_now(FORCED_RECORDER_WAIT)
        left = self.supervisor.left_bytes
        say("stopped" + (f"; {size(left)} stay in the spool" if left else ""))
        self._exit_now(sig)

    def _exit_now(self, sig: int) -> None:
        self.supervisor.kill()
        exit_now(sig, self.info)


class ServingWorkers:
    """``--workers N``: the same run, with the proxy in N worker processes on the port this process bound
    (``ProxyWorkers``) and the recorder supervised here. This process accepts no connection itself."""

    def __init__(self, settings: Settings, bound: Bound) -> None:
        self.settings = settings
        self.bound = bound
        self.link = RecorderLink(secret=secrets.token_hex(16))
        self.supervisor = RecorderSupervisor(settings, self.link)
        self.metrics = settings.spool_path / SHARED_METRICS
        self.workers = ProxyWorkers(settings, self.link, key_salt(settings), listening(bound), self.metrics)
        self.supervisor.on_change = self.workers.relay
        self.info = server_file(settings)
        self._forcing: asyncio.Task[None] | None = None

    async def run(self) -> int:
        stopper = Stopper(self._force, self._exit_now)
        stopped = False
        try:
            _fresh_folder(self.metrics)  # the last run's counts are not this one's
            if self.settings.record:
                self.supervisor.start()  # first, as the first resource of serve's own app
            await self.workers.start()
            port, host = self.bound.port, self.settings.host
            url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
            _write_server_file(self.info, url)
            print(banner(url, self.settings), flush=True)
            await stopper.requested.wait()
            await self._stop()
            stopped = True
            if self._forcing is not None:  # a second signal came while stopping: that stop ends the process
                await self._forcing
        finally:
            if not stopped:  # a worker that could not start: nothing was served, nothing waits
                self.workers.kill()
                self.supervisor.kill()
            with contextlib.suppress(FileNotFoundError):
                self.info.unlink()
            stopper.remove()
        say_stopped(self.supervisor.left_bytes)
        return 0

    async def _stop(self) -> None:
        """The workers finish their requests in flight and seal their spools; the recorder gets the rest."""
        loop = asyncio.get_running_loop()
        timeout = self.settings.shutdown_timeout
        deadline = loop.time() + timeout
        self.supervisor.deadline = deadline
        say(f"stopping within {timeout:g}s (shutdown_timeout); Ctrl-C again stops at once, nothing answered is lost")
        self.bound.close()  # the workers hold the sockets until they stop accepting
        await self.workers.stop(deadline)  # each cuts off what is in flight before the recorder's reserve
        await self.supervisor.stop()

    def _force(self, sig: int) -> None:
        say("stopping at once: requests in flight are cut off; what is not stored yet stays in the spool")
        self._forcing = asyncio.get_running_loop().create_task(self._forced(sig), name="forced-stop")

    async def _forced(self, sig: int) -> None:
        await asyncio.gather(
            self.workers.stop_now(FORCED_RECORDER_WAIT), self.supervisor.stop_now(FORCED_RECORDER_WAIT)
        )
        left = self.supervisor.left_bytes
        say("stopped" + (f"; {size(left)} stay in the spool" if left else ""))
        self._exit_now(sig)

    def _exit_now(self, sig: int) -> None:
        self.workers.kill()
        self.supervisor.kill()
        exit_now(sig, self.info)


def exit_now(sig: int, info: Path) -> NoReturn:
    """Exit without waiting for anything: every answered exchange is in the spool files already, and the
    locks go with the process."""
    with contextlib.suppress(OSError):
        info.unlink()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(128 + sig)


def say_stopped(left: int | None) -> None:
    """The last line of a stop: what the recorder left in the spool (None: it never said, or never ran)."""
    if left:
        say(f"stopped; {size(left)} not stored yet stay in the spool, and the next serve stores them")
    else:
        say("stopped" + (", everything recorded is in the store" if left == 0 else ""))


def _fresh_folder(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for old in path.iterdir():
        with contextlib.suppress(OSError):
            old.unlink()


def proxy_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    """The runner of a proxy process's app (serve's own, or each worker's)."""
    return web.AppRunner(
        app,
        handler_cancellation=True,
        access_log_class=AccessLogger,
        access_log=logging.getLogger("toolwatch.access") if settings.access_log else None,
        shutdown_timeout=CUT_OFF_GRACE,  # the wait for in-flight requests is ours, before cleanup
    )


async def finish_requests(
    app: web.Application, runner: web.AppRunner, site: LimitedSite, deadline: float, timeout: float
) -> None:
    """Stop accepting and wait for in-flight requests until a moment before ``deadline`` (the recorder
    keeps the rest of ``timeout``); those still in flight then are cut off, recorded as such."""
    loop = asyncio.get_running_loop()
    await site.stop()  # no new connections; a keep-alive one closes after its current request
    if runner.server is not None:
        runner.server.pre_shutdown()
    forwarder = app[FORWARDER]
    cut_off_at = deadline - min(RESERVE, timeout * 0.2) - CUT_OFF_GRACE
    said, next_say = -1, 0.0
    while forwarder.in_flight and loop.time() < cut_off_at:
        n, now = forwarder.in_flight, loop.time()
        if (n != said and now >= next_say) or now >= next_say + 4.0:
            plural = "s" if n > 1 else ""
            say(f"waiting for {n} in-flight request{plural} (cut off in {cut_off_at - now:.0f}s)")
            said, next_say = n, now + 1.0
        await asyncio.sleep(0.05)
    if forwarder.in_flight:
        plural = "s" if forwarder.in_flight > 1 else ""
        say(f"cutting off {forwarder.in_flight} request{plural} still in flight (recorded as cut off)")
    forwarder.stopping = True


def _write_server_file(path: Path, url: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps({"url": url, "pid": os.getpid()}))
    os.replace(tmp, path)
