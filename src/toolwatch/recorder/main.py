"""The recorder process: ``python -m toolwatch.recorder``, started and supervised by ``toolwatch serve``.

It reads its settings as JSON on standard input, opens the store, serves the read API on a loopback port
and prints ``{"port": N}`` on standard output once ready. On SIGTERM or SIGINT it drains the spool into
the store for at most ``shutdown_timeout`` seconds; what is left stays in the spool for the next start.
It also stops when its parent process goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import time

from aiohttp import web

from toolwatch.config import Settings
from toolwatch.errors import StoreError
from toolwatch.logs import setup_logging
from toolwatch.recorder.api import make_app
from toolwatch.recorder.build import BuildOptions
from toolwatch.recorder.loop import Recorder, SeenIds, ToolCallIndex
from toolwatch.recorder.outcomes import Classifier
from toolwatch.spool.reader import SpoolReader
from toolwatch.store.handle import StoreHandle
from toolwatch.store.writer import ClickHouseSink

log = logging.getLogger("toolwatch.recorder")
RECORDER_NICENESS = 10
GC_GEN0_THRESHOLD = 20_000


def warm_seen(store: StoreHandle, seen: SeenIds, hours: int = 24) -> None:
    """Remember tool results already stored, so a restarted recorder does not record them again."""
    rows = store.run(
        lambda c: (
            c.query(
                "SELECT upstream, tool_call_id FROM tool_results WHERE ts > now() - toIntervalHour({h:UInt32})"
                " ORDER BY ts LIMIT 1000000",
                parameters={"h": hours},
            ).result_rows
        )
    )
    for upstream, tool_call_id in rows:
        seen.add((upstream, tool_call_id))


def warm_index(store: StoreHandle, index: ToolCallIndex, hours: int = 24) -> None:
    """Remember recent tool calls, so results that arrive after a restart still find their call."""
    rows = store.run(
        lambda c: (
            c.query(
                "SELECT upstream, tool_call_id, call_id, conv_key FROM tool_calls"
                " WHERE ts > now() - toIntervalHour({h:UInt32}) ORDER BY ts DESC LIMIT {n:UInt32}",
                parameters={"h": hours, "n": index.capacity},
            ).result_rows
        )
    )
    for upstream, tool_call_id, call_id, key in reversed(rows):
        index.put((upstream, tool_call_id), (call_id, key))


def work(recorder: Recorder, store: StoreHandle, stop: threading.Event, settings: Settings) -> None:
    delay = 0.25
    while not stop.is_set():
        try:
            store.client()
            warm_seen(store, recorder.seen)
            warm_index(store, recorder.index)
            break
        except StoreError as e:
            store.note_error(e)
            log.warning("store not available (retrying in %.1fs): %s", delay, e)
        except Exception as e:  # noqa: BLE001
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
    recorder = Recorder(
        SpoolReader(spool),
        ClickHouseSink(store),
        options=BuildOptions(
            result_max_bytes=settings.result_max_bytes,
            store_bodies=settings.store_bodies,
            classifier=Classifier.from_settings(settings.outcome_rules),
        ),
        batch_rows=settings.batch_rows,
        batch_interval=settings.batch_interval,
    )
    stop = threading.Event()
    worker = threading.Thread(target=work, args=(recorder, store, stop, settings), name="recorder", daemon=True)
    worker.start()

    runner = web.AppRunner(make_app(recorder, store), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sys.stdout.write(f'{{"port": {port}}}\n')
    sys.stdout.flush()

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
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
    stop.set()
    await asyncio.to_thread(worker.join, settings.shutdown_timeout + 5.0)
    await runner.cleanup()
    store.close()
    log.info(
        "recorder stopped after draining %.2fs; %d bytes left in the spool",
        time.monotonic() - started,
        recorder.reader.pending_bytes(),
    )
    return 0


def set_priority(priority: str) -> None:
    """The proxy comes first: when both want the CPU, recording falls behind and the spool absorbs it."""
    with contextlib.suppress(OSError, AttributeError):
        if priority == "idle":
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        elif priority == "low":
            os.nice(RECORDER_NICENESS)


def main(early_stop: threading.Event | None = None) -> int:
    settings = Settings.model_validate_json(sys.stdin.read())
    set_priority(settings.recorder_priority)
    # every exchange allocates thousands of short-lived objects: collect the young generation less often
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)
    setup_logging(settings.log_level, "recorder")
    return asyncio.run(serve(settings, early_stop))
