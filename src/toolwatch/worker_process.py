"""A proxy worker of ``toolwatch serve --workers N``: ``python -m toolwatch.worker_process``, started and
supervised by serve (``supervisor.ProxyWorkers``).

It reads its order as one JSON line on standard input (settings, the listening sockets it inherited, its
spool writer id, the key salt, where the recorder answers), serves the proxy's app on those sockets and
prints ``{"ready": true}``; then each later line on standard input says where the recorder answers now.
SIGTERM (or SIGINT): stop accepting, finish the requests in flight within ``shutdown_timeout`` (cut off
the rest a moment before its end, recorded as such) and seal its spool, then exit 0. SIGUSR1: exit at once;
every answered exchange is in the spool already. It dies with serve, however serve dies: the kernel kills
it (PR_SET_PDEATHSIG), and standard input closing also ends it.
"""

from __future__ import annotations

import os
import signal
import threading

from toolwatch.child import die_with_parent

EARLY_STOP = threading.Event()
STOP_NOW = signal.SIGUSR1


if __name__ == "__main__":  # before the imports below, on purpose
    die_with_parent()
    for _sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(_sig, lambda *_: EARLY_STOP.set())
    signal.signal(STOP_NOW, lambda *_: os._exit(0))

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import orjson  # noqa: E402

from toolwatch.dashboard import add_routes as add_dashboard  # noqa: E402
from toolwatch.errors import EXIT_ERROR  # noqa: E402
from toolwatch.logs import say, setup_logging  # noqa: E402
from toolwatch.proxy.app import FORWARDER, RecorderLink, make_app  # noqa: E402
from toolwatch.proxy.listen import Bound, LimitedSite, adopt, raise_file_limit, settle_heap  # noqa: E402
from toolwatch.schemas.errors import ToolwatchError  # noqa: E402
from toolwatch.schemas.settings import Settings  # noqa: E402
from toolwatch.serve import finish_requests, proxy_runner  # noqa: E402

LINE_LIMIT = 64 * 1024 * 1024  # the order carries every setting (prices, patterns): no small limit


def report(**what: object) -> None:
    """One line to serve on standard output."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.write(orjson.dumps(what).decode() + "\n")
        sys.stdout.flush()


class Worker:
    """One worker's run: serve on the inherited sockets until told to stop, then stop in time."""

    def __init__(self, settings: Settings, bound: Bound, link: RecorderLink, order: dict[str, Any]) -> None:
        self.settings = settings
        self.bound = bound
        self.name = str(order["worker"])
        self.app = make_app(
            settings, link, salt=bytes.fromhex(order["salt"]), worker=(self.name, Path(order["metrics"]))
        )
        add_dashboard(self.app)
        self.runner = proxy_runner(self.app, settings)
        # the connection bound is serve's: shared out among its workers
        self.max_connections = -(-settings.max_connections // settings.workers)

    async def run(self, stop: asyncio.Event) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(STOP_NOW, self._stop_now)
        if EARLY_STOP.is_set():
            stop.set()
        try:
            await self.runner.setup()
            raise_file_limit(self.max_connections)
            site = LimitedSite(
                self.runner,
                self.settings.host,
                self.bound.port,
                max_connections=self.max_connections,
                bound=self.bound,
            )
            await site.start()
            settle_heap()
            report(ready=True)
            await stop.wait()
            deadline = loop.time() + self.settings.shutdown_timeout
            await finish_requests(self.app, self.runner, site, deadline, self.settings.shutdown_timeout)
        finally:
            await self.runner.cleanup()  # the spool is sealed and made durable last
        return 0

    def _stop_now(self) -> None:
        in_flight = self.app[FORWARDER].in_flight if FORWARDER in self.app else 0
        if in_flight:
            say(f"worker {self.name}: {in_flight} request{'s' if in_flight != 1 else ''} in flight cut off")
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(0)


async def follow(reader: asyncio.StreamReader, link: RecorderLink) -> None:
    """Keep ``link`` current from serve's lines; serve gone (standard input closed): exit at once."""
    while line := await reader.readline():
        with contextlib.suppress(ValueError, TypeError, KeyError):
            told = orjson.loads(line)["link"]
            link.url, link.alive, link.restarts = told["url"], bool(told["alive"]), int(told["restarts"])
    os._exit(0)


async def serve() -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    order = orjson.loads(await reader.readline())
    settings = Settings.model_validate(order["settings"])
    setup_logging(settings.log_level, f"proxy {order['worker']}")
    link = RecorderLink(**order["link"])
    following = loop.create_task(follow(reader, link), name="recorder-link")
    try:
        bound = await adopt(settings.host, [int(fd) for fd in order["fds"]])
        return await Worker(settings, bound, link, order).run(asyncio.Event())
    except ToolwatchError as e:
        report(error=str(e))
        return EXIT_ERROR
    finally:
        following.cancel()


def main() -> int:
    os.umask(0o077)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve())
    return uvloop.run(serve())


if __name__ == "__main__":
    raise SystemExit(main())
