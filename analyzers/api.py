"""The read API, served in the recorder process (the only process with the store open).

The proxy relays ``/_toolwatch/api/<name>`` here byte for byte. Queries run in a worker thread under the
store lock. The handlers know the recorder only through ``StatusSource``, and reclassify through the
function they are given.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import os
import time
from typing import Any, Protocol

from aiohttp import web
from clickhouse_connect.driver.client import Client

from toolwatch.analyzers.alerting import NoSuchAlert, alert_write
from toolwatch.analyzers.erase import Erased, erase
from toolwatch.analyzers.params import ParamError, analyzer_params, int_param, window
from toolwatch.analyzers.views import Context, NotFound, view
from toolwatch.schemas.errors import StoreError
from toolwatch.store.handle import StoreHandle


class StatusSource(Protocol):
    def status(self) -> dict[str, Any]:
        """Recording figures for ``/status`` (called in a worker thread)."""
        ...


class MetricsText(Protocol):
    def __call__(self) -> bytes:
        """The recorder's Prometheus exposition."""
        ...


class Forget(Protocol):
    def __call__(self) -> None:
        """Drop the recorder's cached session rows (after rows were deleted under them)."""
        ...


class Reclassify(Protocol):
    def __call__(self, client: Client, since: dt.datetime) -> tuple[int, int]:
        """Re-apply the outcome rules to results since ``since``: (examined, changed)."""
        ...


SOURCE = web.AppKey("status_source", StatusSource)
STORE = web.AppKey("store", StoreHandle)
RECLASSIFY = web.AppKey("reclassify", Reclassify)
FORGET = web.AppKey("forget", Forget)
STARTED = web.AppKey("started", float)
CONTEXT = web.AppKey("context", Context)
METRICS = web.AppKey("metrics_text", MetricsText)


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def _query(request: web.Request, name: str, **params: Any) -> Any:
    ctx = request.app[CONTEXT]
    try:
        return await asyncio.to_thread(request.app[STORE].run, lambda c: view(c, name, params, ctx))
    except NotFound as e:
        raise web.HTTPNotFound(text=json.dumps({"error": str(e)}), content_type="application/json") from None
    except StoreError as e:
        raise web.HTTPServiceUnavailable(  # noqa: B904 - the HTTP error is the whole story
            text=json.dumps({"error": f"store unavailable: {e}"}), content_type="application/json"
        )


async def status(request: web.Request) -> web.Response:
    store = request.app[STORE]
    recording = await asyncio.to_thread(request.app[SOURCE].status)
    return web.json_response(
        {
            "recorder_alive": True,
            "recorder_pid": os.getpid(),
            "recorder_uptime_s": round(time.monotonic() - request.app[STARTED], 3),
            "store_reachable": store.reachable,
            "store_errors": recording["write_errors"],
            "last_store_error": recording["last_error"] or store.last_error,
            "spool_lag_bytes": recording["spool_lag_bytes"],
            "frames_read": recording["frames_read"],
            "records_written": recording["records_written"],
            "calls_written": recording["calls_written"],
            "tool_calls_written": recording["tool_calls_written"],
            "tool_results_written": recording["tool_results_written"],
            "duplicate_results_skipped": recording["duplicate_results_skipped"],
            "build_errors": recording["build_errors"],
            "damaged_frames": recording["damaged_frames"],
            "pending_batch_rows": recording["pending_batch_rows"],
            "last_write_at": recording["last_write_at"],
        }
    )


async def calls(request: web.Request) -> web.Response:
    try:
        last = int_param(request.query.get("last"), "last", 20, 1, 10_000)
    except ParamError as e:
        raise _bad_request(str(e)) from None
    rows = await _query(request, "recent_calls", last=last)
    return web.json_response(rows)


async def analyzer(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        params = analyzer_params(name, dict(request.query))
    except (ParamError, ValueError) as e:
        return web.json_response({"error": str(e)}, status=400)
    rows = await _query(request, name, **params)
    return web.json_response(rows)


async def reclassify_results(request: web.Request) -> web.Response:
    try:
        since, _ = window(request.query.get("since", "30d"), None)
    except ParamError as e:
        return web.json_response({"error": str(e)}, status=400)
    fn = request.app[RECLASSIFY]
    try:
        examined, changed = await asyncio.to_thread(request.app[STORE].run, lambda c: fn(c, since))
    except StoreError as e:
        return web.json_response({"error": f"store unavailable: {e}"}, status=503)
    return web.json_response({"examined": examined, "changed": changed})


async def alert_action(request: web.Request) -> web.Response:
    action, q = request.match_info["action"], request.query
    try:
        fn = alert_write(action, dict(q))
    except (ParamError, ValueError) as e:
        return web.json_response({"error": str(e)}, status=400)
    try:
        done = await asyncio.to_thread(request.app[STORE].run, fn)
    except NoSuchAlert as e:
        return web.json_response({"error": str(e)}, status=404)
    except ValueError as e:
        return web.json_response({"error": str(e)}, status=400)
    except StoreError as e:
        return web.json_response({"error": f"store unavailable: {e}"}, status=503)
    return web.json_response(done)


INTERNAL_HEADER = "X-Toolwatch-Internal"


def internal_only(secret: str) -> Any:
    """The read API listens on loopback for the proxy only: a call without the proxy's secret is refused."""

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if secret and not hmac.compare_digest(request.headers.get(INTERNAL_HEADER, "").encode(), secret.encode()):
            return web.json_response({"error": "not for you"}, status=403)
        return await handler(request)  # type: ignore[no-any-return]

    return check


async def delete(request: web.Request) -> web.Response:
    user, session = request.query.get("user"), request.query.get("session")
    if (user is None) == (session is None) or not (user or session):
        return web.json_response({"error": "give exactly one of user or session"}, status=400)
    try:
        done = await asyncio.to_thread(request.app[STORE].run, lambda c: _erase(request.app, c, user, session))
    except StoreError as e:
        return web.json_response({"error": f"store unavailable: {e}"}, status=503)
    return web.json_response({"calls": done.calls, "rows": done.rows})


def _erase(app: web.Application, client: Client, user: str | None, session: str | None) -> Erased:
    """Under the store lock, as the recorder's fold: the cached session rows go with the erased ones, so no
    later event writes an erased call back."""
    done = erase(client, user=user, session=session)
    app[FORGET]()
    return done


async def metrics(request: web.Request) -> web.Response:
    exposition = request.app[METRICS]
    body = await asyncio.to_thread(exposition)
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


def make_app(
    source: StatusSource,
    store: StoreHandle,
    reclassify: Reclassify,
    secret: str = "",
    ctx: Context | None = None,
    metrics_text: MetricsText | None = None,
    forget: Forget | None = None,
) -> web.Application:
    app = web.Application(middlewares=[internal_only(secret)])
    app[CONTEXT] = ctx or Context()
    app[METRICS] = metrics_text or (lambda: b"")
    app[SOURCE] = source
    app[STORE] = store
    app[RECLASSIFY] = reclassify
    app[FORGET] = forget or (lambda: None)
    app[STARTED] = time.monotonic()
    app.router.add_get("/status", status)
    app.router.add_get("/calls", calls)
    app.router.add_get(
        "/{name:report|sessions|session|timeseries|tools|call|prices|alerts|check|compare|silences}", analyzer
    )
    app.router.add_post("/alerts/{action:ack|silence|unsilence}", alert_action)
    app.router.add_post("/reclassify", reclassify_results)
    app.router.add_post("/delete", delete)
    app.router.add_get("/metrics", metrics)
    return app
