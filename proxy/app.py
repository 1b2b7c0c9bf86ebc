"""The proxy process's aiohttp application: routes, shared resources and the relay to the recorder.

Resources live in ``cleanup_ctx`` generators, one per resource (setup before ``yield``, teardown after),
under typed keys, so the order of start and teardown is declared in ``make_app``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from toolwatch.proxy import access
from toolwatch.proxy.forward import ExchangeSink, Forwarder
from toolwatch.proxy.headers import install_byte_faithful_headers
from toolwatch.proxy.metrics import ProxyMetrics
from toolwatch.schemas.exchange import Exchange
from toolwatch.schemas.settings import Settings
from toolwatch.spool.writer import SpoolWriter

log = logging.getLogger("toolwatch.proxy")
access_log = logging.getLogger("toolwatch.access")


@dataclass
class RecorderLink:
    """Where the recorder's read API answers; kept current by the supervisor."""

    url: str | None = None
    alive: bool = False
    restarts: int = 0
    secret: str = ""  # sent with every relayed call: the recorder's loopback API answers nobody else


SETTINGS = web.AppKey("settings", Settings)
LINK = web.AppKey("recorder_link", RecorderLink)
SPOOL = web.AppKey("spool", SpoolWriter)
FORWARDER = web.AppKey("forwarder", Forwarder)
API_CLIENT = web.AppKey("api_client", aiohttp.ClientSession)
UPSTREAM_SESSION = web.AppKey("upstream_session", aiohttp.ClientSession)
SINK_OVERRIDE = web.AppKey("sink_override", ExchangeSink)
SALT = web.AppKey("key_salt", bytes)
METRICS = web.AppKey("metrics", ProxyMetrics)
WORKER = web.AppKey("worker", str)  # this process's spool writer id, when it is one of several workers
INTERNAL_HEADER = "X-Toolwatch-Internal"


class AccessLogger(AbstractAccessLogger):
    """Method, path without its query string, status, size and time: never a header or a key."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %s %.1fms',
            request.remote,
            request.method,
            request.path,
            response.status,
            response.body_length,
            time * 1000.0,
        )


class _Nothing:
    """The sink of ``record = false``: every exchange is forwarded, none is kept."""

    def append(self, exchange: Exchange, request: bytes, response: bytes) -> bool:
        return True


NOTHING = _Nothing()


async def _spool(app: web.Application) -> AsyncIterator[None]:
    """The spool writer, unless a test gave the app its own sink. Closing it writes what is pending."""
    if SINK_OVERRIDE in app:
        yield
        return
    s = app[SETTINGS]
    spool = SpoolWriter(
        s.spool_path,
        cap_bytes=s.spool_cap_bytes,
        segment_bytes=s.segment_bytes,
        segment_max_age=s.segment_max_age,
        writer_id=app.get(WORKER, "w0"),
    )
    await spool.start()
    app[SPOOL] = spool
    yield
    await spool.close()


async def _upstream_session(app: web.Application) -> AsyncIterator[None]:
    """The client session towards the upstreams: bytes as they are, no cookies, no added headers."""
    s = app[SETTINGS]
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60.0, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=s.connect_timeout, sock_read=s.idle_timeout)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
    ) as session:
        app[UPSTREAM_SESSION] = session
        yield


async def _api_client(app: web.Application) -> AsyncIterator[None]:
    """The client session that relays the read API to the recorder."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30.0)) as session:
        app[API_CLIENT] = session
        yield


class _Counted:
    """The spool as the forwarder's sink, telling the metrics of every exchange it did not record (a
    worker's drops are summed across workers from shared files, which a callable cannot be)."""

    def __init__(self, spool: SpoolWriter, metrics: ProxyMetrics) -> None:
        self.spool = spool
        self.metrics = metrics

    def append(self, exchange: Exchange, request: bytes, response: bytes) -> bool:
        if self.spool.append(exchange, request, response):
            return True
        self.metrics.not_recorded()
        return False


async def _forwarder(app: web.Application) -> AsyncIterator[None]:
    sink: ExchangeSink = app[SINK_OVERRIDE] if SINK_OVERRIDE in app else app[SPOOL]
    if WORKER in app and SINK_OVERRIDE not in app:
        sink = _Counted(app[SPOOL], app[METRICS])
    app[FORWARDER] = Forwarder(
        app[SETTINGS], app[UPSTREAM_SESSION], sink, app[SALT], overhead=app[METRICS].observe_overhead
    )
    yield


async def _recorder_get(app: web.Application, name: str, query: str = "", method: str = "GET") -> tuple[int, bytes]:
    link = app[LINK]
    if not link.alive or not link.url:
        raise ConnectionError("the recorder is not running")
    url = f"{link.url}/{name}" + (f"?{query}" if query else "")
    async with app[API_CLIENT].request(method, url, headers={INTERNAL_HEADER: link.secret}) as resp:
        return resp.status, await resp.read()


async def status(request: web.Request) -> web.Response:
    app = request.app
    spool = app.get(SPOOL)
    fwd = app[FORWARDER]
    body: dict[str, object] = {
        "proxy_alive": True,
        "in_flight": fwd.in_flight,
        "record_failures": fwd.record_failures,
        "spool_bytes": spool.bytes_on_disk if spool else None,
        "spool_cap_bytes": spool.cap_bytes if spool else None,
        "exchanges_spooled": spool.appended if spool else None,
        "records_dropped": spool.dropped if spool else None,
        "records_refused": spool.refused if spool else None,
        "spool_write_errors": spool.write_errors if spool else None,
        "spool_healthy": spool.healthy if spool else None,
        "dead_letters": spool.dead_letters.count() if spool else None,
        "recorder_restarts": app[LINK].restarts,
        "recorder_alive": False,
        "store_reachable": None,
    }
    if WORKER in app:
        body["worker"] = app[WORKER]
    try:
        code, raw = await asyncio.wait_for(_recorder_get(app, "status"), 5.0)
        if code == 200:
            body.update(orjson.loads(raw))
    except (ConnectionError, aiohttp.ClientError, TimeoutError, ValueError) as e:
        body["recorder_error"] = str(e) or type(e).__name__
    return web.json_response(body)


async def healthz(request: web.Request) -> web.Response:
    """Always 200 while the proxy runs (a store outage must not get the proxy restarted); ``degraded``
    when anything stands between an exchange and the store: the recorder, the store, the spool, or
    dead letters waiting for someone to look at them."""
    spool = request.app.get(SPOOL)
    spool_ok = spool is None or spool.healthy
    dead = spool.dead_letters.count() if spool is not None else 0
    recorder_alive, store_reachable = False, None
    try:
        code, raw = await asyncio.wait_for(_recorder_get(request.app, "status"), 2.0)
        if code == 200:
            data = orjson.loads(raw)
            recorder_alive, store_reachable = True, bool(data.get("store_reachable"))
    except (ConnectionError, aiohttp.ClientError, TimeoutError, ValueError):
        pass
    ok = recorder_alive and bool(store_reachable) and spool_ok and dead == 0
    return web.json_response(
        {
            "status": "ok" if ok else "degraded",
            "proxy": "ok",
            "recorder_alive": recorder_alive,
            "store_reachable": store_reachable,
            "spool": "ok" if spool_ok else "stopped",
            "dead_letters": dead,
        }
    )


async def api_relay(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        code, raw = await _recorder_get(request.app, name, request.query_string, request.method)
    except (ConnectionError, aiohttp.ClientError, TimeoutError) as e:
        return web.json_response({"error": f"recorder unavailable: {e or type(e).__name__}"}, status=503)
    return web.Response(status=code, body=raw, content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    """Prometheus: the proxy's own series, then the recorder's (counted where exchanges are parsed)."""
    body = request.app[METRICS].exposition()
    try:
        code, raw = await asyncio.wait_for(_recorder_get(request.app, "metrics"), 5.0)
        if code == 200:
            body += raw
    except (ConnectionError, aiohttp.ClientError, TimeoutError) as e:
        log.debug("recorder metrics unavailable: %s", e)
    return web.Response(
        body=body, content_type="text/plain", charset="utf-8", headers={"X-Content-Type-Options": "nosniff"}
    )


async def forward(request: web.Request) -> web.StreamResponse:
    return await request.app[FORWARDER].handle(request)


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/_toolwatch/")


async def login(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound()  # answered by the access middleware before it gets here


def make_app(
    settings: Settings,
    link: RecorderLink | None = None,
    sink: ExchangeSink | None = None,
    salt: bytes = b"",
    worker: tuple[str, Path] | None = None,
) -> web.Application:
    """``worker``: this app is one of several proxy processes (``serve --workers N``): its spool writer id,
    and the folder where the workers' metrics are shared."""
    install_byte_faithful_headers()
    app = web.Application(client_max_size=settings.parse_limit + 1, middlewares=[access.middleware(settings)])
    app[SETTINGS] = settings
    app[LINK] = link or RecorderLink()
    app[SALT] = salt

    def dropped() -> int:
        spool = app.get(SPOOL)
        return 0 if spool is None else spool.dropped + spool.refused

    if worker is not None:
        app[WORKER] = worker[0]
    app[METRICS] = ProxyMetrics(list(settings.upstreams), dropped, shared=worker[1] if worker else None)
    if sink is None and not settings.record:
        sink = NOTHING  # record = false: no spool
    if sink is not None:
        app[SINK_OVERRIDE] = sink
    # set up in this order, torn down in the reverse one: the spool closes last, after every request
    app.cleanup_ctx.extend((_spool, _upstream_session, _api_client, _forwarder))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", home)
    app.router.add_get("/_toolwatch/login", login)
    app.router.add_get("/_toolwatch/api/status", status)
    app.router.add_get("/_toolwatch/api/{name:[a-z_/]+}", api_relay)
    app.router.add_post(
        "/_toolwatch/api/{name:reclassify|delete|alerts/ack|alerts/silence|alerts/unsilence}", api_relay
    )
    app.router.add_route("*", "/{upstream:[^/_][^/]*}{rest:(/.*)?}", forward)
    return app
