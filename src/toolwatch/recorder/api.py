"""The read API, served by the recorder (the only process with the store open).

The proxy relays ``/_toolwatch/api/<name>`` here. Queries run in a worker thread under the store lock.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from aiohttp import web

from toolwatch.analyzers import runner
from toolwatch.analyzers.params import ParamError, analyzer_params, window
from toolwatch.errors import StoreError
from toolwatch.recorder.loop import Recorder
from toolwatch.store.handle import StoreHandle
from toolwatch.store.reclassify import reclassify

RECORDER = web.AppKey("recorder", Recorder)
STORE = web.AppKey("store", StoreHandle)
STARTED = web.AppKey("started", float)


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(  # noqa: B904 - the HTTP error is the whole story
            text=f'{{"error": "{name} must be an integer"}}', content_type="application/json"
        )
    if not lo <= value <= hi:
        raise web.HTTPBadRequest(
            text=f'{{"error": "{name} must be between {lo} and {hi}"}}', content_type="application/json"
        )
    return value


async def _query(store: StoreHandle, name: str, **params: Any) -> list[dict[str, Any]]:
    try:
        return await asyncio.to_thread(store.run, lambda c: runner.run(c, name, **params))
    except StoreError as e:
        raise web.HTTPServiceUnavailable(  # noqa: B904
            text=json.dumps({"error": f"store unavailable: {e}"}), content_type="application/json"
        )


async def status(request: web.Request) -> web.Response:
    rec = request.app[RECORDER]
    store = request.app[STORE]
    lag = await asyncio.to_thread(rec.reader.lag_bytes)
    s = rec.stats
    return web.json_response(
        {
            "recorder_alive": True,
            "recorder_pid": os.getpid(),
            "recorder_uptime_s": round(time.monotonic() - request.app[STARTED], 3),
            "store_reachable": store.reachable,
            "store_errors": s.write_errors,
            "last_store_error": s.last_error or store.last_error,
            "spool_lag_bytes": lag,
            "frames_read": s.frames_read,
            "records_written": s.records_written,
            "calls_written": s.calls_written,
            "tool_calls_written": s.tool_calls_written,
            "tool_results_written": s.tool_results_written,
            "duplicate_results_skipped": s.duplicate_results_skipped,
            "build_errors": s.build_errors,
            "damaged_frames": rec.reader.damaged,
            "pending_batch_rows": rec.batch.rows(),
            "last_write_at": s.last_write_at,
        }
    )


async def calls(request: web.Request) -> web.Response:
    last = _int_param(request, "last", 20, 1, 10_000)
    rows = await _query(request.app[STORE], "recent_calls", last=last)
    return web.json_response(rows)


async def analyzer(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        params = analyzer_params(name, dict(request.query))
    except (ParamError, ValueError) as e:
        return web.json_response({"error": str(e)}, status=400)
    rows = await _query(request.app[STORE], name, **params)
    return web.json_response(rows)


async def reclassify_results(request: web.Request) -> web.Response:
    try:
        since, _ = window(request.query.get("since", "30d"), None)
    except ParamError as e:
        return web.json_response({"error": str(e)}, status=400)
    classifier = request.app[RECORDER].options.classifier
    try:
        done = await asyncio.to_thread(request.app[STORE].run, lambda c: reclassify(c, classifier, since))
    except StoreError as e:
        return web.json_response({"error": f"store unavailable: {e}"}, status=503)
    return web.json_response({"examined": done.examined, "changed": done.changed})


def make_app(recorder: Recorder, store: StoreHandle) -> web.Application:
    app = web.Application()
    app[RECORDER] = recorder
    app[STORE] = store
    app[STARTED] = time.monotonic()
    app.router.add_get("/status", status)
    app.router.add_get("/calls", calls)
    app.router.add_get("/{name:report|sessions|session}", analyzer)
    app.router.add_post("/reclassify", reclassify_results)
    return app
