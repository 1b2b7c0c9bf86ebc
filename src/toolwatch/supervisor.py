"""The child processes ``serve`` supervises. The recorder process: started with the proxy, restarted when
it dies, stopped last (after the spool is sealed) by the time ``serve`` gives it. With ``--workers N``,
the proxy workers too (``ProxyWorkers``): started on the listening sockets serve bound, restarted when
one dies, stopped first.

The recorder reports on its standard output, one JSON object a line: ``{"port": N}`` once ready, then
while it drains ``{"draining": {"left_bytes": N, "stored": N}}`` and last ``{"stopped": {...}}``; the
supervisor tells the person at the terminal how the drain goes. SIGTERM asks the recorder to drain the
spool, SIGUSR1 to stop at once (the spool stays as it is, for the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path

import orjson
from aiohttp import web

from toolwatch.logs import say, size
from toolwatch.proxy.app import RecorderLink
from toolwatch.schemas.errors import ToolwatchError
from toolwatch.schemas.settings import Settings

log = logging.getLogger("toolwatch.serve")
CUT_OFF_GRACE = 0.5  # what a request still in flight at its deadline gets before it is cancelled
FORCED_RECORDER_WAIT = 1.5  # after a second signal, the recorder's time to stop before it is killed


class RecorderSupervisor:
    """Starts the recorder, restarts it when it dies, and stops it last."""

    def __init__(self, settings: Settings, link: RecorderLink) -> None:
        self.settings = settings
        self.link = link
        self.proc: asyncio.subprocess.Process | None = None
        self.deadline: float | None = None  # loop time by which the recorder must have stopped
        self.left_bytes: int | None = None  # what the recorder last said the spool holds unstored
        self._stopping = False
        self._said_left: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.on_change: Callable[[], None] = lambda: None  # called when ``link`` changes

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
                start_new_session=True,  # Ctrl-C reaches serve alone, which stops the recorder in order
                # the recorder asks the kernel to kill it when this process dies (PR_SET_PDEATHSIG)
                env={
                    **os.environ,
                    "TOOLWATCH_PARENT_PID": str(os.getpid()),
                    "TOOLWATCH_INTERNAL_SECRET": self.link.secret,
                },
            )
            self.proc = proc
            if self._stopping:  # told to stop while it was being started: it drains, then exits
                self._signal(signal.SIGTERM)
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
                self.on_change()
                log.info("recorder running (pid %d)", proc.pid)
                backoff = 0.5
            async for report in proc.stdout:  # until the recorder exits
                self._heard(report)
            rc = await proc.wait()
            self.link.alive = False
            self.link.url = None
            if self._stopping:
                self.on_change()
                break
            self.link.restarts += 1
            self.on_change()
            log.error("recorder exited with code %s; restarting in %.1fs", rc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    def _heard(self, line: bytes) -> None:
        try:
            report = orjson.loads(line)
            state = report.get("draining") or report["stopped"]
            left = int(state["left_bytes"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        self.left_bytes = left
        if "draining" in report and left and left != self._said_left:
            self._said_left = left
            say(f"storing what the spool holds: {size(left)} left, {int(state.get('stored', 0))} exchanges stored")

    async def stop(self) -> None:
        """Tell the recorder to drain the spool, and stop it when ``deadline`` comes."""
        self._stopping = True
        self._signal(signal.SIGTERM)
        if self._task is None:
            return
        loop = asyncio.get_running_loop()
        deadline = self.deadline if self.deadline is not None else loop.time() + self.settings.shutdown_timeout
        try:
            await asyncio.wait_for(asyncio.shield(self._task), max(deadline - loop.time(), CUT_OFF_GRACE))
        except TimeoutError:
            say("shutdown_timeout is over: the recorder stops; the rest of the spool is stored at the next start")
            await self.stop_now(FORCED_RECORDER_WAIT)
            try:  # it reads the recorder's last report, or may still be starting one: none is wanted now
                await asyncio.wait_for(asyncio.shield(self._task), FORCED_RECORDER_WAIT)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self.kill()

    async def stop_now(self, wait: float) -> None:
        """Stop the recorder at once (SIGUSR1: it leaves the spool as it is), killing it after ``wait``."""
        self._stopping = True
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        self._signal(signal.SIGUSR1)
        try:
            await asyncio.wait_for(proc.wait(), wait)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)


def supervised(supervisor: RecorderSupervisor) -> Callable[[web.Application], AsyncIterator[None]]:
    """The recorder as the app's first resource: started before the spool, stopped after it is sealed,
    so its last drain sees every frame the proxy wrote."""

    async def recorder(app: web.Application) -> AsyncIterator[None]:
        supervisor.start()
        yield
        await supervisor.stop()

    return recorder


class ProxyWorkers:
    """The proxy processes of ``serve --workers N`` (``python -m toolwatch.worker_process``), each serving
    on the inherited listening sockets with a spool writer of its own (``w0``, ``w1``, ...).

    A worker reads one JSON line on standard input (its settings, sockets, writer id, key salt, where the
    recorder answers), then a line whenever the recorder's link changes; it prints ``{"ready": true}``
    once it serves (or ``{"error": "..."}`` when it cannot start). SIGTERM: finish the requests in flight
    within ``shutdown_timeout`` and seal its spool; SIGUSR1: exit at once (every answered exchange is in
    the spool already). The kernel kills a worker when serve dies, however it dies (PR_SET_PDEATHSIG).
    """

    def __init__(self, settings: Settings, link: RecorderLink, salt: bytes, fds: list[int], metrics: Path) -> None:
        self.settings = settings
        self.link = link
        self.salt = salt
        self.fds = fds
        self.metrics = metrics
        self.names = [f"w{i}" for i in range(settings.workers)]
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, timeout: float = 120.0) -> None:
        """Start every worker and return once each serves; raise ToolwatchError (what the first one to
        fail said) when one cannot start."""
        loop = asyncio.get_running_loop()
        ready = {name: loop.create_future() for name in self.names}
        self._tasks = [loop.create_task(self._run(n, ready[n]), name=f"proxy-worker-{n}") for n in self.names]
        try:
            await asyncio.wait_for(asyncio.gather(*ready.values()), timeout)
        except TimeoutError:
            raise ToolwatchError(f"the proxy workers did not start within {timeout:g}s") from None

    async def _run(self, name: str, ready: asyncio.Future[None]) -> None:
        try:
            await self._supervise(name, ready)
        except Exception as e:
            if ready.done():
                raise
            ready.set_exception(e)

    async def _supervise(self, name: str, ready: asyncio.Future[None]) -> None:
        backoff = 0.5
        while not self._stopping:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "toolwatch.worker_process",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                pass_fds=self.fds,
                start_new_session=True,  # Ctrl-C reaches serve alone, which stops the workers in order
                env={
                    **os.environ,
                    "TOOLWATCH_PARENT_PID": str(os.getpid()),
                    "PROMETHEUS_MULTIPROC_DIR": str(self.metrics),
                },
            )
            self.procs[name] = proc
            assert proc.stdin is not None and proc.stdout is not None
            order = {
                "settings": orjson.loads(self.settings.model_dump_json()),
                "worker": name,
                "fds": self.fds,
                "metrics": str(self.metrics),
                "salt": self.salt.hex(),
                "link": asdict(self.link),
            }
            proc.stdin.write(orjson.dumps(order) + b"\n")
            with contextlib.suppress(ConnectionError):
                await proc.stdin.drain()
            if self._stopping:  # told to stop while it was being started
                self._signal(proc, signal.SIGTERM)
            said: object = None
            with contextlib.suppress(ValueError):
                said = orjson.loads(await proc.stdout.readline())
            if not isinstance(said, dict):
                said = {}
            if said.get("ready"):
                backoff = 0.5
                if not ready.done():
                    ready.set_result(None)
            elif said.get("error") and not ready.done():
                ready.set_exception(ToolwatchError(str(said["error"])))
            while await proc.stdout.readline():  # until the worker exits
                pass
            rc = await proc.wait()
            if self._stopping:
                break
            if not ready.done():
                ready.set_exception(ToolwatchError(f"proxy worker {name} exited with code {rc} while starting"))
                break
            log.error("proxy worker %s exited with code %s; restarting in %.1fs", name, rc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    def relay(self) -> None:
        """Tell every worker where the recorder answers now (the supervisor calls it on every change)."""
        line = orjson.dumps({"link": asdict(self.link)}) + b"\n"
        for proc in self.procs.values():
            if proc.returncode is None and proc.stdin is not None and not proc.stdin.is_closing():
                with contextlib.suppress(ConnectionError, RuntimeError):
                    proc.stdin.write(line)

    async def stop(self, deadline: float) -> None:
        """SIGTERM every worker (each finishes its requests in flight and seals its spool) and wait for
        them until ``deadline`` (loop time); any still running then is killed."""
        self._stopping = True
        for proc in self.procs.values():
            self._signal(proc, signal.SIGTERM)
        await self._wait(max(deadline - asyncio.get_running_loop().time(), CUT_OFF_GRACE))

    async def stop_now(self, wait: float) -> None:
        """SIGUSR1 every worker (exit at once), killing those still running after ``wait``."""
        self._stopping = True
        for proc in self.procs.values():
            self._signal(proc, signal.SIGUSR1)
        await self._wait(wait)

    async def _wait(self, seconds: float) -> None:
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=seconds)
            if late:
                self.kill()
                await asyncio.wait(late, timeout=FORCED_RECORDER_WAIT)

    def kill(self) -> None:
        self._stopping = True
        for proc in self.procs.values():
            self._signal(proc, signal.SIGKILL)

    @staticmethod
    def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
