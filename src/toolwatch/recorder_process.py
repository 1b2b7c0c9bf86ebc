"""The recorder process: ``python -m toolwatch.recorder_process``, started and supervised by ``serve``.

It reads its settings as JSON on standard input, opens the store, serves the read API on a loopback port
and prints ``{"port": N}`` on standard output once ready. On SIGTERM or SIGINT it drains the spool into
the store for at most ``shutdown_timeout`` seconds, saying how it goes (``{"draining": {"left_bytes": N,
"stored": N}}`` every half second, then ``{"stopped": {"left_bytes": N}}``); what is left stays in the
spool for the next start. SIGUSR1, or a second SIGTERM or SIGINT, stops it at once, the spool as it is
(an insert cut short is replayed with its deduplication token at the next start, as after a SIGKILL).
It also stops when its parent process goes away. A stop signal that arrives while it is still starting
is kept, so a recorder told to stop early still drains the spool before it exits.
"""

from __future__ import annotations

import os
import signal
import threading

from toolwatch.child import die_with_parent

EARLY_STOP = threading.Event()
STOP_NOW = signal.SIGUSR1


def _early_signal(*_: object) -> None:
    """A stop signal while starting: the first is kept for later, a second one stops at once."""
    if EARLY_STOP.is_set():
        os._exit(0)
    EARLY_STOP.set()


if __name__ == "__main__":  # before the heavy imports below, on purpose
    die_with_parent()
    for _sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(_sig, _early_signal)
    signal.signal(STOP_NOW, lambda *_: os._exit(0))

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import datetime as dt  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any  # noqa: E402

import orjson  # noqa: E402
from aiohttp import web  # noqa: E402
from clickhouse_connect.driver.client import Client  # noqa: E402

from toolwatch.analyzers.api import make_app  # noqa: E402
from toolwatch.analyzers.cost import price_table  # noqa: E402
from toolwatch.analyzers.views import Context  # noqa: E402
from toolwatch.jobs import Jobs  # noqa: E402
from toolwatch.logs import setup_logging  # noqa: E402
from toolwatch.recorder.build import BuildOptions  # noqa: E402
from toolwatch.recorder.loop import Recorder  # noqa: E402
from toolwatch.recorder.outcomes import Classifier  # noqa: E402
from toolwatch.recorder.reclassify import reclassify  # noqa: E402
from toolwatch.recorder.redact import Redactor  # noqa: E402
from toolwatch.schemas.settings import Settings  # noqa: E402
from toolwatch.spool.reader import SpoolReader  # noqa: E402
from toolwatch.store.handle import StoreHandle  # noqa: E402
from toolwatch.store.writer import ClickHouseSink  # noqa: E402

log = logging.getLogger("toolwatch.recorder")
RECORDER_NICENESS = 10
GC_GEN0_THRESHOLD = 20_000
PROGRESS_EVERY = 0.5


def report(**what: object) -> None:
    """One line to ``serve`` on standard output (it reads them while the recorder runs)."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.write(orjson.dumps(what).decode() + "\n")
        sys.stdout.flush()


def work(recorder: Recorder, store: StoreHandle, stop: threading.Event, settings: Settings) -> None:
    """Open the store (retrying while it is unavailable), warm the recorder's memory, then record."""
    delay = 0.25

    def query(sql: str, parameters: dict[str, Any]) -> Sequence[Sequence[Any]]:
        return store.run(lambda c: c.query(sql, parameters=parameters).result_rows)

    while not stop.is_set():
        try:
            store.client()
            recorder.links.warm(query)
            break
        except Exception as e:  # noqa: BLE001 - any failure here means: not available yet
            store.note_error(e)
            log.warning("store not available (retrying in %.1fs): %s", delay, e)
        stop.wait(delay)
        delay = min(delay * 2, 5.0)
    else:
        return
    recorder.run(stop, settings.shutdown_timeout)


async def serve(settings: Settings, early_stop: threading.Event | None = None) -> int:
    spool = settings.spool_path
    spool.mkdir(parents=True, exist_ok=True)
    store = StoreHandle(settings)
    classifier = Classifier.from_settings(settings.outcome_rules)
    sink = ClickHouseSink(store)
    recorder = Recorder(
        SpoolReader(spool),
        sink,
        options=BuildOptions(
            result_max_bytes=settings.result_max_bytes,
            store_bodies=settings.store_bodies,
            classifier=classifier,
            redactor=Redactor(settings.redact_patterns, settings.redact_defaults),
        ),
        batch_rows=settings.batch_rows,
        batch_interval=settings.batch_interval,
    )
    stop = threading.Event()
    worker = threading.Thread(target=work, args=(recorder, store, stop, settings), name="recorder", daemon=True)
    worker.start()

    def reclassify_since(client: Client, since: dt.datetime) -> tuple[int, int]:
        # under the store lock, as the recorder's fold: no batch folds into a cached row between the rewrite
        # and the forget
        done = reclassify(client, classifier, since)
        sink.sessions.forget(done.sessions)
        return done.examined, done.changed

    secret = os.environ.get("TOOLWATCH_INTERNAL_SECRET", "")
    ctx = Context(price_table({m: p.model_dump() for m, p in settings.prices.items()}))
    jobs = Jobs(settings, recorder, store, ctx)
    app = make_app(
        recorder,
        store,
        reclassify_since,
        secret,
        ctx,
        metrics_text=jobs.metrics.exposition,
        forget=sink.sessions.forget,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sys.stdout.write(f'{{"port": {port}}}\n')
    sys.stdout.flush()
    jobs.start()

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def stop_now() -> None:
        """Exit at once; what is not stored yet stays in the spool (nothing is lost, as after a SIGKILL)."""
        report(stopped={"left_bytes": recorder.reader.lag_bytes(), "forced": True})
        log.debug("recorder stopped at once; what is not stored yet stays in the spool")
        os._exit(0)

    def stop_signal() -> None:
        if stopping.is_set():
            stop_now()
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_signal)
    loop.add_signal_handler(STOP_NOW, stop_now)
    if early_stop is not None and early_stop.is_set():
        stopping.set()
    parent = os.getppid()
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), timeout=1.0)
        except TimeoutError:
            if os.getppid() != parent:
                log.warning("parent process went away; stopping")
                break
    started = time.monotonic()
    if settings.recorder_priority != "normal":
        drain_first()
    stop.set()
    stored_before = recorder.stats.calls_written
    while worker.is_alive() and time.monotonic() - started < settings.shutdown_timeout + 5.0:
        await asyncio.to_thread(worker.join, PROGRESS_EVERY)
        if worker.is_alive():  # a drain that takes a while: say how it goes
            stored = recorder.stats.calls_written - stored_before
            report(draining={"left_bytes": recorder.reader.lag_bytes(), "stored": stored})
    await jobs.stop()
    await runner.cleanup()
    store.close()
    left = recorder.reader.lag_bytes()
    report(stopped={"left_bytes": left})
    log.debug("recorder stopped after draining %.2fs; %d bytes left in the spool", time.monotonic() - started, left)
    return 0


def set_priority(priority: str) -> None:
    """The proxy comes first: when both want the CPU, recording falls behind and the spool absorbs it."""
    with contextlib.suppress(OSError, AttributeError):
        if priority == "idle":
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        elif priority == "low":
            os.nice(RECORDER_NICENESS)


def drain_first() -> None:
    """At stop the proxy serves nobody any more: the last drain need not yield the CPU. Every thread (the
    store engine's included) goes back to normal priority where that is allowed (raising priority takes
    root or a nice limit); elsewhere the drain stays low, and what the time does not cover stays spooled."""
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return
    for tid in threads:
        with contextlib.suppress(OSError, AttributeError):
            if os.sched_getscheduler(tid) == os.SCHED_IDLE:
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, 0)


def main(early_stop: threading.Event | None = None) -> int:
    os.umask(0o077)
    settings = Settings.model_validate_json(sys.stdin.read())
    set_priority(settings.recorder_priority)
    # every exchange allocates thousands of short-lived objects: collect the young generation less often
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)
    setup_logging(settings.log_level, "recorder")
    return asyncio.run(serve(settings, early_stop))


if __name__ == "__main__":
    raise SystemExit(main(EARLY_STOP))
