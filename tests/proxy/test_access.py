"""Access to what toolwatch serves itself (``/_toolwatch/*``, ``/metrics``, ``/``): the token and its cookie,
the Host allow-list on loopback and elsewhere, writes that a cross-site page cannot make, and proxied
routes that none of this touches.

Regression: ``/_toolwatch/`` had no access control (bound to 0.0.0.0 it served prompts to anyone), any
``Host`` was accepted (DNS rebinding), and ``POST reclassify`` could be triggered from any web page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.upstreams import FakeUpstream
from tests.harness import Harness, ServeProcess, make_settings, run_cli, send_openai

TOKEN = "tw-admin-7f3a9c"


@pytest.fixture
async def open_tw(store_path: Path, tmp_path: Path, fake: FakeUpstream) -> AsyncIterator[Harness]:
    h = Harness(make_settings(store_path, tmp_path / "spool", fake.url, public_url="https://tw.example.com"))
    await h.start()
    yield h
    await h.close()


@pytest.fixture
async def locked_tw(store_path: Path, tmp_path: Path, fake: FakeUpstream) -> AsyncIterator[Harness]:
    h = Harness(make_settings(store_path, tmp_path / "spool", fake.url, admin_token=TOKEN))
    await h.start()
    yield h
    await h.close()


async def call(url: str, method: str = "GET", **kw: Any) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
        async with s.request(method, url, allow_redirects=False, **kw) as r:
            return r.status, dict(r.headers), await r.text()


async def test_loopback_without_a_token_reads_openly(open_tw: Harness) -> None:
    assert (await call(open_tw.url + "/_toolwatch/api/status"))[0] == 200
    status, headers, _ = await call(open_tw.url + "/")
    assert status == 302 and headers["Location"] == "/_toolwatch/"


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1", 200),
        ("localhost:8787", 200),
        ("[::1]:8787", 200),
        ("tw.example.com", 200),  # the host of public_url
        ("evil.example", 421),  # a rebinding attack's name
        ("127.0.0.1.evil.example", 421),
        ("", 421),
    ],
)
async def test_the_host_allow_list(open_tw: Harness, host: str, status: int) -> None:
    assert (await call(open_tw.url + "/_toolwatch/api/status", headers={"Host": host}))[0] == status


async def test_proxied_routes_ignore_the_host_and_token_rules(locked_tw: Harness, fake: FakeUpstream) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    status, _, _ = await call(
        locked_tw.url + "/openai/v1/chat/completions", "POST", json=body, headers={"Host": "evil.example"}
    )
    assert status == 200 and len(fake.received) == 1


async def test_writes_need_the_token_or_the_custom_header(open_tw: Harness) -> None:
    url = open_tw.url + "/_toolwatch/api/reclassify"
    # what a cross-site form or fetch can send: refused before anything runs
    for headers in ({}, {"Content-Type": "application/x-www-form-urlencoded"}, {"Origin": "https://evil.example"}):
        status, _, text = await call(url, "POST", headers=headers)
        assert status == 403 and "Toolwatch-Request" in text
    status, _, _ = await call(url, "POST", headers={"Toolwatch-Request": "1"})
    assert status in (200, 503)  # relayed (503: no recorder in this harness)


async def test_a_token_guards_reads_and_writes(locked_tw: Harness) -> None:
    url = locked_tw.url + "/_toolwatch/api/status"
    assert (await call(url))[0] == 401
    assert (await call(url, headers={"Authorization": "Bearer wrong"}))[0] == 401
    assert (await call(url, headers={"Authorization": f"Bearer {TOKEN}"}))[0] == 200
    assert (await call(url, headers={"Cookie": f"toolwatch_token={TOKEN}"}))[0] == 200
    assert (await call(locked_tw.url + "/healthz"))[0] == 200  # stays open
    post = locked_tw.url + "/_toolwatch/api/reclassify"
    assert (await call(post, "POST", headers={"Cookie": f"toolwatch_token={TOKEN}"}))[0] == 403  # CSRF
    status, _, _ = await call(post, "POST", headers={"Cookie": f"toolwatch_token={TOKEN}", "Toolwatch-Request": "1"})
    assert status != 403
    assert (await call(post, "POST", headers={"Authorization": f"Bearer {TOKEN}"}))[0] != 403


async def test_the_dashboard_login_sets_a_strict_cookie(locked_tw: Harness) -> None:
    status, headers, _ = await call(locked_tw.url + "/_toolwatch/")
    assert status == 302 and headers["Location"] == "/_toolwatch/login"
    status, _, text = await call(locked_tw.url + "/_toolwatch/login?token=wrong")
    assert status == 401 and "admin token" in text
    status, headers, _ = await call(locked_tw.url + f"/_toolwatch/login?token={TOKEN}")
    assert status == 302 and headers["Location"] == "/_toolwatch/"
    cookie = headers["Set-Cookie"]
    assert f"toolwatch_token={TOKEN}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


async def test_serve_refuses_a_non_loopback_address_without_a_token(tmp_path: Path) -> None:
    rc, out, err = await run_cli("serve", "--host", "0.0.0.0", "--port", "0", "--store", f"chdb://{tmp_path}/s")
    assert rc == 2 and "needs an admin token" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


async def test_the_cli_sends_the_token(tmp_path: Path, tool_fake: FakeUpstream) -> None:
    serve = await ServeProcess(tmp_path, tool_fake.url, env={"TOOLWATCH_ADMIN_TOKEN": TOKEN}).start()
    try:
        await send_openai(serve.url, 1)
        await serve.wait_for(lambda s: s.get("calls_written", 0) == 1)  # status() sends the token
        code, _ = await serve.get_raw("/_toolwatch/api/calls")
        assert code == 401
        rc, out, err = await run_cli("calls", "--json", "--store", serve.store, env={"TOOLWATCH_ADMIN_TOKEN": TOKEN})
        assert rc == 0 and '"tool_calls"' in out, err
        rc, out, err = await run_cli("calls", "--store", serve.store, env={"TOOLWATCH_ADMIN_TOKEN": ""})
        assert rc == 2 and "401" in err
    finally:
        await serve.stop()
