"""``toolwatch serve`` as a person meets it first: a start that fails says so in a line or two (exit 2, no
traceback), the banner says where everything is and what an agent sets, a request to a mount that does not
exist is told the nearest one, and a stop keeps to ``shutdown_timeout`` while saying what it waits for.

Regressions, each reproduced on the old main: a port in use printed a 31-line traceback ending in
``OSError: [Errno 98]`` (exit 1); a store under a regular file, a ``NotADirectoryError`` traceback; the
listening address was said twice; ``/opnai/...`` was answered "no upstream named 'opnai'" alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.upstreams import FakeUpstream, Reply
from tests.harness import ServeProcess, run_cli, send_openai
from toolwatch.banner import banner
from toolwatch.proxy.app import make_app
from toolwatch.proxy.route import RouteError, resolve
from toolwatch.schemas.exchange import Exchange
from toolwatch.schemas.settings import load_settings
from toolwatch.spool.reader import SpoolReader


def one_or_two_lines(err: str) -> bool:
    lines = err.strip().splitlines()
    return 1 <= len(lines) <= 2 and all(line.startswith("toolwatch: ") for line in lines[:1])


# -- a start that cannot happen ----------------------------------------------------------------------


async def test_a_port_in_use_is_one_line_naming_the_port_and_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc, out, err = await run_cli("serve", "--port", str(port), "--store", f"chdb://{tmp_path}/store", cwd=tmp_path)
    assert rc == 2, err
    assert out == ""  # no banner, no "listening"
    assert one_or_two_lines(err), err
    assert f"port {port} on 127.0.0.1 is in use" in err and "--port 0" in err
    assert "Traceback" not in err and "Unclosed" not in err and "Errno" not in err
    assert not (tmp_path / "store" / "toolwatch.server.json").exists()


@pytest.mark.parametrize(
    ("flag", "value", "what"),
    [
        ("--store", "chdb://{file}/store", "store"),
        ("--store", "chdb://{file}", "store"),
        ("--spool", "{file}/spool", "spool"),
    ],
)
async def test_a_store_or_spool_under_a_regular_file_is_one_line(
    tmp_path: Path, flag: str, value: str, what: str
) -> None:
    file = tmp_path / "file.txt"
    file.write_text("not a folder")
    args = ["serve", "--port", "0", flag, value.format(file=file)]
    if flag == "--spool":
        args += ["--store", f"chdb://{tmp_path}/store"]
    rc, out, err = await run_cli(*args, cwd=tmp_path)
    assert rc == 2, err
    assert out == ""
    assert one_or_two_lines(err), err
    assert f"cannot create the {what} folder" in err and f"{file} is a file, not a folder" in err
    assert "Traceback" not in err and "Unclosed" not in err
    assert file.read_text() == "not a folder"


# -- the banner ----------------------------------------------------------------------------------------


@pytest.fixture
async def glm_serve(tmp_path: Path, tool_fake: FakeUpstream) -> AsyncIterator[tuple[ServeProcess, list[str]]]:
    """serve with a configured upstream besides the built-in ones, and the lines of its banner."""
    config = tmp_path / "toolwatch.toml"
    config.write_text('[upstreams.glm]\nurl = "https://api.z.ai/api/paas/v4"\napi = "openai"\n')
    tw = ServeProcess(tmp_path, tool_fake.url, "--config", str(config))
    await tw.start()
    assert tw.proc is not None and tw.proc.stdout is not None
    lines = [f"toolwatch listening on {tw.url}"]
    while not lines[-1].startswith("serve keeps this terminal"):
        lines.append((await asyncio.wait_for(tw.proc.stdout.readline(), 10)).decode().rstrip("\n"))
    try:
        yield tw, lines
    finally:
        await tw.stop()


async def test_the_banner_says_where_everything_is_and_what_agents_set(
    glm_serve: tuple[ServeProcess, list[str]], tmp_path: Path, tool_fake: FakeUpstream
) -> None:
    tw, lines = glm_serve
    url = tw.url
    text = "\n".join(lines)
    assert lines[0] == f"toolwatch listening on {url}"
    assert f"store      chdb://{tmp_path}/store" in text
    assert f"spool      {tmp_path}/spool" in text
    assert f"dashboard  {url}/_toolwatch/" in text
    rows = {line.split()[0]: line.split("->")[1].strip() for line in lines if "->" in line}
    assert rows == {
        f"OPENAI_BASE_URL={url}/openai/v1": f"{tool_fake.url} (from TOOLWATCH_UPSTREAM_OPENAI_URL)",
        f"ANTHROPIC_BASE_URL={url}/anthropic": f"{tool_fake.url} (from TOOLWATCH_UPSTREAM_ANTHROPIC_URL)",
        f"GOOGLE_GEMINI_BASE_URL={url}/gemini": "https://generativelanguage.googleapis.com",
        f"OPENAI_BASE_URL={url}/glm": "https://api.z.ai/api/paas/v4",
    }
    assert lines[-1] == (
        f"serve keeps this terminal; in another one: toolwatch report --store chdb://{tmp_path}/store,"
        " or open the dashboard. Ctrl-C stops."
    )
    # the base URL it prints is the one that works
    await send_openai(f"{url}", 1)
    # GET / goes to the dashboard
    async with aiohttp.ClientSession() as s, s.get(url + "/", allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"] == "/_toolwatch/"
    # said once: not also in a log line
    await tw.stop()
    assert "listening" not in tw.stderr.decode()


class Nowhere:
    """A sink that keeps nothing: these requests go nowhere anyway."""

    def append(self, exchange: Exchange, request: bytes, response: bytes) -> bool:
        return True


async def test_an_unknown_mount_is_told_the_configured_ones_and_the_nearest(
    tmp_path: Path, tool_fake: FakeUpstream
) -> None:
    config = tmp_path / "toolwatch.toml"
    config.write_text('[upstreams.glm]\nurl = "https://api.z.ai/api/paas/v4"\napi = "openai"\n')
    settings = load_settings(config, environ={"TOOLWATCH_UPSTREAM_OPENAI_URL": tool_fake.url}, overrides={
        "store": f"chdb://{tmp_path}/store"})  # fmt: skip
    runner = web.AppRunner(make_app(settings, sink=Nowhere()))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/opnai/v1/chat/completions", json={"model": "m"}) as r:
                assert r.status == 404
                error = (await r.json())["error"]
            assert error["type"] == "toolwatch_error"
            assert error["configured_upstreams"] == ["anthropic", "gemini", "glm", "openai"]
            assert "did you mean 'openai' (/openai/v1/chat/completions)?" in error["message"]
            assert "configured upstreams: anthropic, gemini, glm, openai" in error["message"]
            async with s.post(url + "/v1/chat/completions", json={"model": "m"}) as r:
                assert r.status == 404
                error = (await r.json())["error"]
            assert "the path must start with the upstream's mount, e.g. /openai/v1/chat/completions" in error["message"]
    finally:
        await runner.cleanup()
    assert tool_fake.received == []  # nothing went anywhere


def test_unknown_mount_messages() -> None:
    ups = dict(load_settings(None, environ={}, overrides={"store": "chdb:///nowhere"}).upstreams)

    def message(target: str) -> str:
        with pytest.raises(RouteError) as e:
            resolve(target, ups)
        assert e.value.status == 404
        return e.value.message

    assert "did you mean 'anthropic' (/anthropic/v1/messages)?" in message("/anthropc/v1/messages")
    assert "e.g. /anthropic/v1/messages (an agent's base URL ends in /anthropic)" in message("/v1/messages")
    assert "e.g. /openai/v1/chat/completions" in message("/chat/completions")
    assert "e.g. /gemini/v1beta/models/g:generateContent" in message("/v1beta/models/g:generateContent")
    far = message("/favicon.ico")
    assert "did you mean" not in far and "configured upstreams: anthropic, gemini, openai" in far


def test_the_banner_for_a_server_store_and_a_wildcard_address() -> None:
    settings = load_settings(
        None,
        environ={},
        overrides={"store": "http://user:secret@ch:8123/tw", "host": "0.0.0.0", "admin_token": "t0ken"},
    )
    text = banner("http://0.0.0.0:8787", settings, environ={})
    assert text.splitlines()[0] == "toolwatch listening on http://0.0.0.0:8787"
    assert "store      http://ch:8123/tw" in text and "secret" not in text
    assert "OPENAI_BASE_URL=http://127.0.0.1:8787/openai/v1" in text
    assert "/_toolwatch/login?token=..." in text and "t0ken" not in text
    assert "toolwatch report --server http://127.0.0.1:8787" in text


# -- stopping ----------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def hung_store() -> AsyncIterator[str]:
    """A ClickHouse address that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()


async def test_a_stop_keeps_to_shutdown_timeout_and_loses_nothing_answered(
    tmp_path: Path, tool_fake: FakeUpstream
) -> None:
    """A stream that would go on for minutes is in flight and the store never answers: serve stops
    within its 2 s anyway, saying what it waits for; every answered exchange stays in the spool (the next
    serve recording it is ``test_terminal.py``'s)."""
    env = {"TOOLWATCH_SHUTDOWN_TIMEOUT": "2", "TOOLWATCH_STORE_TIMEOUT": "120"}
    async with hung_store() as dsn:
        tw = ServeProcess(tmp_path, tool_fake.url, env=env)
        tw.store = dsn
        await tw.start()
        try:
            await send_openai(tw.url, 3)
            await tw.wait_for(lambda s: s.get("exchanges_spooled", 0) == 3 and s.get("recorder_alive", False))
            tool_fake.push(Reply(text="word " * 60, chunk_size=8, chunk_delay=1.0))  # minutes long
            async with aiohttp.ClientSession() as s:
                body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "slow"}]}
                async with s.post(f"{tw.url}/openai/v1/chat/completions", json=body) as r:
                    assert r.status == 200
                    await r.content.readany()  # the stream has begun
                    assert tw.proc is not None
                    tw.proc.send_signal(signal.SIGINT)
                    with contextlib.suppress(aiohttp.ClientError):
                        async for _ in r.content.iter_any():
                            pass  # cut off when serve stops, long before its minute
            rc = await asyncio.wait_for(tw.proc.wait(), 40)  # one signal only: no second one from stop()
            await tw.stop()
        finally:
            await tw.kill()
    err = tw.stderr.decode()
    assert rc == 0, err[-3000:]
    assert "toolwatch: stopping within 2s (shutdown_timeout)" in err
    assert "toolwatch: waiting for 1 in-flight request" in err
    assert "toolwatch: cutting off 1 request still in flight" in err
    assert "toolwatch: shutdown_timeout is over: the recorder stops" in err
    assert "stay in the spool, and the next serve stores them" in err
    assert "Traceback" not in err and "Unclosed" not in err
    # nothing is lost: the spool holds every answered exchange, and the one cut off, for the next serve
    frames = SpoolReader(tmp_path / "spool").poll().frames
    assert sorted(f.exchange.outcome for f in frames) == ["client_aborted", "ok", "ok", "ok"]
    (cut,) = [f.exchange for f in frames if f.exchange.outcome == "client_aborted"]
    assert (cut.error or "").startswith("cut off: toolwatch stopped before the answer was complete")
