"""The proxy application on a loopback port: health and status with and without a recorder, the relay
of ``/_toolwatch/api/`` to the recorder's read API, reserved paths never forwarded, and the access log."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.fakes.upstreams import FakeUpstream
from tests.harness import make_settings
from toolwatch.proxy.app import AccessLogger, RecorderLink, make_app
from toolwatch.schemas.exchange import Exchange
from toolwatch.schemas.settings import Settings, Upstream


class ListSink:
    """Keeps every finished exchange in a list instead of a spool."""

    def __init__(self) -> None:
        self.items: list[tuple[Exchange, bytes, bytes]] = []

    def append(self, exchange: Exchange, request: bytes, response: bytes) -> bool:
        self.items.append((exchange, request, response))
        return True


@dataclass
class Seen:
    method: str
    path: str
    query: str


@dataclass
class FakeRecorder:
    """A stand-in for the recorder's read API, noting every request it gets."""

    status: dict[str, Any] = field(
        default_factory=lambda: {
            "recorder_alive": True,
            "store_reachable": True,
            "records_written": 7,
            "frames_read": 9,
        }
    )
    status_code: int = 200
    seen: list[Seen] = field(default_factory=list)
    runner: web.AppRunner | None = None
    url: str = ""

    CALLS = b'[{"call_id": "c-1", "model": "gpt-x", "tool_calls": [[0, "call_1", "lookup", "{}", true]]}]'

    async def start(self) -> FakeRecorder:
        app = web.Application()
        app.router.add_route("*", "/{name:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.seen.append(Seen(request.method, "/" + name, request.query_string))
        if name == "status":
            return web.json_response(self.status, status=self.status_code)
        if name == "calls":
            return web.Response(body=self.CALLS, content_type="application/json")
        if name == "report":
            return web.json_response({"error": "'banana' is not a duration"}, status=400)
        if name == "reclassify" and request.method == "POST":
            return web.json_response({"examined": 3, "changed": 1})
        if name == "session":
            return web.json_response([{"session": request.query.get("session")}])
        return web.json_response({"error": "not found"}, status=404)


@dataclass
class Proxy:
    url: str
    link: RecorderLink
    sink: ListSink
    http: aiohttp.ClientSession

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.http.get(self.url + path, **kw) as r:
            return r.status, await r.json()


@pytest.fixture
def settings(tmp_path: Path, fake: FakeUpstream) -> Settings:
    base = make_settings(tmp_path / "store", tmp_path / "spool", fake.url)
    # the settings reject an upstream whose name starts with "_"; one is slipped in anyway (no validation)
    # to show that the route, too, never reaches it
    upstreams = {**base.upstreams, "_hidden": Upstream(url=fake.url, api="openai")}
    return Settings.model_construct(**{**dict(base), "upstreams": upstreams})


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def start(app: web.Application, **runner_kw: Any) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, **runner_kw)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
def link() -> RecorderLink:
    return RecorderLink(restarts=2)


@pytest.fixture
async def proxy(settings: Settings, link: RecorderLink, http: aiohttp.ClientSession) -> AsyncIterator[Proxy]:
    sink = ListSink()
    runner, url = await start(make_app(settings, link, sink=sink))
    try:
        yield Proxy(url, link, sink, http)
    finally:
        await runner.cleanup()


@pytest.fixture
async def recorder(link: RecorderLink) -> AsyncIterator[FakeRecorder]:
    rec = await FakeRecorder().start()
    link.url, link.alive = rec.url, True
    try:
        yield rec
    finally:
        await rec.close()


# --- without a recorder -----------------------------------------------------------------------


async def test_healthz_is_degraded_without_a_recorder(proxy: Proxy) -> None:
    assert await proxy.get("/healthz") == (
        200,
        {
            "status": "degraded",
            "proxy": "ok",
            "recorder_alive": False,
            "store_reachable": None,
            "spool": "ok",
            "dead_letters": 0,
        },
    )


async def test_status_works_without_a_recorder(proxy: Proxy) -> None:
    code, body = await proxy.get("/_toolwatch/api/status")
    assert code == 200
    assert body == {
        "proxy_alive": True,
        "in_flight": 0,
        "record_failures": 0,
        "spool_bytes": None,  # recording goes to the test's sink, not a spool
        "spool_cap_bytes": None,
        "exchanges_spooled": None,
        "records_dropped": None,
        "records_refused": None,
        "spool_write_errors": None,
        "spool_healthy": None,
        "dead_letters": None,
        "recorder_restarts": 2,
        "recorder_alive": False,
        "store_reachable": None,
        "recorder_error": "the recorder is not running",
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_toolwatch/api/calls?last=5"),
        ("GET", "/_toolwatch/api/report?since=1h"),
        ("GET", "/_toolwatch/api/sessions"),
        ("POST", "/_toolwatch/api/reclassify"),
    ],
)
async def test_relayed_calls_answer_503_without_a_recorder(proxy: Proxy, method: str, path: str) -> None:
    async with proxy.http.request(method, proxy.url + path, headers={"Toolwatch-Request": "1"}) as r:
        assert r.status == 503
        assert await r.json() == {"error": "recorder unavailable: the recorder is not running"}


async def test_a_link_that_is_not_alive_is_not_used(proxy: Proxy, recorder: FakeRecorder) -> None:
    proxy.link.alive = False  # the supervisor saw it die; its URL is stale
    assert (await proxy.get("/_toolwatch/api/calls"))[0] == 503
    assert (await proxy.get("/healthz"))[1]["status"] == "degraded"
    assert recorder.seen == []


async def test_a_recorder_that_does_not_answer(proxy: Proxy) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proxy.link.url, proxy.link.alive = f"http://127.0.0.1:{port}", True
    code, body = await proxy.get("/_toolwatch/api/calls")
    assert code == 503 and body["error"].startswith("recorder unavailable: ")
    assert await proxy.get("/healthz") == (
        200,
        {
            "status": "degraded",
            "proxy": "ok",
            "recorder_alive": False,
            "store_reachable": None,
            "spool": "ok",
            "dead_letters": 0,
        },
    )
    code, body = await proxy.get("/_toolwatch/api/status")
    assert code == 200 and body["recorder_alive"] is False and body["recorder_error"]


# --- with a recorder --------------------------------------------------------------------------


async def test_healthz_is_ok_with_a_recorder_and_its_store(proxy: Proxy, recorder: FakeRecorder) -> None:
    assert await proxy.get("/healthz") == (
        200,
        {
            "status": "ok",
            "proxy": "ok",
            "recorder_alive": True,
            "store_reachable": True,
            "spool": "ok",
            "dead_letters": 0,
        },
    )
    assert [(s.method, s.path) for s in recorder.seen] == [("GET", "/status")]


async def test_healthz_is_degraded_while_the_store_is_unreachable(proxy: Proxy, recorder: FakeRecorder) -> None:
    recorder.status["store_reachable"] = False
    assert await proxy.get("/healthz") == (
        200,
        {
            "status": "degraded",
            "proxy": "ok",
            "recorder_alive": True,
            "store_reachable": False,
            "spool": "ok",
            "dead_letters": 0,
        },
    )


async def test_healthz_is_degraded_when_the_recorder_status_fails(proxy: Proxy, recorder: FakeRecorder) -> None:
    recorder.status_code = 500
    code, body = await proxy.get("/healthz")
    assert code == 200
    assert (body["status"], body["recorder_alive"]) == ("degraded", False)


async def test_status_merges_the_recorders_status(proxy: Proxy, recorder: FakeRecorder) -> None:
    code, body = await proxy.get("/_toolwatch/api/status")
    assert code == 200
    assert body["proxy_alive"] is True and body["recorder_restarts"] == 2
    assert body["recorder_alive"] is True and body["store_reachable"] is True
    assert (body["records_written"], body["frames_read"]) == (7, 9)
    assert "recorder_error" not in body


async def test_the_relay_returns_the_recorders_body_and_status(proxy: Proxy, recorder: FakeRecorder) -> None:
    async with proxy.http.get(proxy.url + "/_toolwatch/api/calls?last=5") as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        assert await r.read() == FakeRecorder.CALLS
    async with proxy.http.get(proxy.url + "/_toolwatch/api/report?since=banana") as r:
        assert r.status == 400
        assert await r.json() == {"error": "'banana' is not a duration"}
    async with proxy.http.get(proxy.url + "/_toolwatch/api/nothing_here") as r:
        assert r.status == 404
    assert [(s.method, s.path, s.query) for s in recorder.seen] == [
        ("GET", "/calls", "last=5"),
        ("GET", "/report", "since=banana"),
        ("GET", "/nothing_here", ""),
    ]


async def test_the_relay_keeps_the_query_string_encoded(proxy: Proxy, recorder: FakeRecorder) -> None:
    code, body = await proxy.get("/_toolwatch/api/session?session=h%3Arun%2042%26x")
    assert code == 200 and body == [{"session": "h:run 42&x"}]


async def test_reclassify_is_relayed_as_a_post(proxy: Proxy, recorder: FakeRecorder) -> None:
    async with proxy.http.post(proxy.url + "/_toolwatch/api/reclassify?since=2d", headers=WRITE) as r:
        assert r.status == 200
        assert await r.json() == {"examined": 3, "changed": 1}
    assert [(s.method, s.path, s.query) for s in recorder.seen] == [("POST", "/reclassify", "since=2d")]


async def test_only_reclassify_is_relayed_as_a_post(proxy: Proxy, recorder: FakeRecorder) -> None:
    async with proxy.http.post(proxy.url + "/_toolwatch/api/calls", headers=WRITE) as r:
        assert r.status == 405
    assert recorder.seen == []


WRITE = {"Toolwatch-Request": "1"}


# --- reserved paths ---------------------------------------------------------------------------


async def test_forwarding_works_for_a_configured_upstream(proxy: Proxy, fake: FakeUpstream) -> None:
    """The control for the test below: the same request under an upstream's name is forwarded."""
    async with proxy.http.get(proxy.url + "/openai/v1/models") as r:
        assert r.status == 200
    assert [rq.path for rq in fake.received] == ["/v1/models"]
    for _ in range(200):  # the exchange is handed to the sink after the response went out
        if proxy.sink.items:
            break
        await asyncio.sleep(0.01)
    assert [(ex.upstream, ex.path, ex.status) for ex, _, _ in proxy.sink.items] == [("openai", "/v1/models", 200)]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_hidden/v1/models"),
        ("POST", "/_hidden/v1/chat/completions"),
        ("GET", "/_openai/v1/models"),
        ("GET", "/_toolwatch/v1/models"),
        ("POST", "/_toolwatch/api"),
        ("GET", "/_toolwatch/api/CALLS"),
        ("GET", "/_/v1/models"),
        ("DELETE", "/_anything"),
    ],
)
async def test_a_path_starting_with_an_underscore_is_never_forwarded(
    proxy: Proxy, recorder: FakeRecorder, fake: FakeUpstream, method: str, path: str
) -> None:
    async with proxy.http.request(method, proxy.url + path, json={"model": "gpt-x", "messages": []}) as r:
        assert r.status in (403, 404, 405)  # 403: a write to toolwatch's own routes without the header
    await asyncio.sleep(0.05)  # give a (wrongly) recorded exchange the chance to show up
    assert fake.received == []
    assert recorder.seen == []
    assert proxy.sink.items == []


def test_the_settings_do_hold_an_upstream_named_with_an_underscore(settings: Settings, fake: FakeUpstream) -> None:
    """So the test above is about the route, not about a name nothing is configured under."""
    assert settings.upstreams["_hidden"].url == fake.url


def test_validated_settings_refuse_an_upstream_named_with_an_underscore(tmp_path: Path) -> None:
    from toolwatch.schemas.errors import ConfigError
    from toolwatch.schemas.settings import load_settings

    cfg = tmp_path / "toolwatch.toml"
    cfg.write_text('[upstreams._hidden]\nurl = "http://127.0.0.1:1"\napi = "openai"\n')
    with pytest.raises(ConfigError, match="_hidden"):
        load_settings(cfg, environ={})


async def test_an_unknown_upstream_is_a_404_in_the_openai_error_shape(proxy: Proxy, fake: FakeUpstream) -> None:
    code, body = await proxy.get("/nosuch/v1/models")
    assert code == 404
    assert body["error"]["type"] == "toolwatch_error" and "nosuch" in body["error"]["message"]
    assert fake.received == []


# --- access log -------------------------------------------------------------------------------


async def test_the_access_log_has_no_query_string_and_no_headers(
    settings: Settings, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="toolwatch.access")
    app = make_app(settings, RecorderLink(), sink=ListSink())
    runner, url = await start(app, access_log_class=AccessLogger, access_log=logging.getLogger("toolwatch.access"))
    try:
        secret = {"Authorization": "Bearer sk-live-SECRET1", "x-goog-api-key": "SECRET2"}
        async with http.get(url + "/openai/v1/models?key=SECRET3&alt=sse", headers=secret) as r:
            assert r.status == 200
        async with http.get(url + "/healthz?token=SECRET4") as r:
            assert r.status == 200
        for _ in range(200):  # the line is written after the response went out
            if len([rec for rec in caplog.records if rec.name == "toolwatch.access"]) >= 2:
                break
            await asyncio.sleep(0.01)
    finally:
        await runner.cleanup()
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "toolwatch.access"]
    assert len(lines) == 2
    assert '"GET /openai/v1/models" 200 ' in lines[0]
    assert '"GET /healthz" 200 ' in lines[1]
    for line in lines:
        assert line.startswith("127.0.0.1 ")
        assert line.endswith("ms")
        assert "SECRET" not in line and "?" not in line and "sk-live" not in line


# --- what the proxy process opens ----------------------------------------------------------------


async def test_a_sink_override_opens_no_spool(settings: Settings, http: aiohttp.ClientSession) -> None:
    runner, url = await start(make_app(settings, None, sink=ListSink()))
    try:
        async with http.get(url + "/healthz") as r:
            assert r.status == 200
            assert orjson.loads(await r.read())["proxy"] == "ok"
    finally:
        await runner.cleanup()
    assert not settings.spool_path.exists()
