"""One writer per store and spool, and reading commands that read the store they were asked for.

Regressions, each reproduced on the old main: a second ``serve`` on the same store ran anyway, retried
"store not available" forever and on exit deleted the first one's server file; a reader started in
another folder printed "no calls" and created an empty store; two readers at once read whatever listened
on the configured port; the engine's lock complaints reached the terminal; ``chdb://relative/store``
was accepted and recorded nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.fakes.upstreams import FakeUpstream
from tests.harness import ServeProcess, run_cli, send_openai


async def test_a_second_serve_on_the_same_store_exits_at_once_and_touches_nothing(
    tmp_path: Path, tool_fake: FakeUpstream
) -> None:
    first = await ServeProcess(tmp_path, tool_fake.url).start()
    try:
        await send_openai(first.url, 2)
        server_file = tmp_path / "store" / "toolwatch.server.json"
        before = server_file.read_bytes()
        rc, out, err = await run_cli(
            "serve", "--port", "0", "--store", first.store, "--spool", str(tmp_path / "spool"), cwd=tmp_path
        )
        assert rc == 2 and out == ""
        assert "another toolwatch serve is using this store" in err and first.url in err
        assert "Traceback" not in err
        assert server_file.read_bytes() == before  # the first one's files are untouched
        await send_openai(first.url, 1)  # and it goes on recording
        await first.wait_for(lambda s: s.get("calls_written", 0) == 3)
        # another store but the same spool is refused too
        rc, _, err = await run_cli(
            "serve", "--port", "0", "--store", f"chdb://{tmp_path}/other", "--spool", str(tmp_path / "spool"),
            cwd=tmp_path,
        )  # fmt: skip
        assert rc == 2 and "using this spool" in err
    finally:
        assert await first.stop() == 0


async def test_a_killed_serve_leaves_no_lock_behind(tmp_path: Path, tool_fake: FakeUpstream) -> None:
    first = await ServeProcess(tmp_path, tool_fake.url).start()
    await send_openai(first.url, 1)
    recorder = (await first.wait_for(lambda s: s.get("recorder_alive", False)))["recorder_pid"]
    await first.kill()
    assert await gone_within(recorder, 1.0), "the recorder outlived its serve"
    second = await ServeProcess(tmp_path, tool_fake.url).start()  # starts at once, same store and spool
    try:
        await send_openai(second.url, 1)
        await second.wait_for(lambda s: s.get("calls_written", 0) >= 1)
    finally:
        assert await second.stop() == 0
    rc, out, err = await run_cli("calls", "--json", "--store", second.store, cwd=tmp_path)
    assert rc == 0 and len(json.loads(out)) == 2, err


async def gone_within(pid: int, seconds: float) -> bool:
    """True when ``pid`` has exited (a zombie waiting for its new parent counts) within ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        try:
            state = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        if "\nState:\tZ" in state:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_readers_find_the_running_serve_through_the_store_from_any_folder(
    tmp_path: Path, tool_fake: FakeUpstream
) -> None:
    serve = await ServeProcess(tmp_path, tool_fake.url, "--port", "0").start()
    try:
        await send_openai(serve.url, 3)
        await serve.wait_for(lambda s: s.get("calls_written", 0) == 3)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        # a port in the settings that is not serve's: the reader must not guess it from there
        env = {"TOOLWATCH_PORT": "9"}
        results = await asyncio.gather(
            *(run_cli("calls", "--json", "--store", serve.store, cwd=elsewhere, env=env) for _ in range(3))
        )
        for rc, out, err in results:
            assert rc == 0, err
            assert len(json.loads(out)) == 3
            assert err == ""  # no engine lock messages
        assert list(elsewhere.iterdir()) == []  # nothing created here
    finally:
        assert await serve.stop() == 0


async def test_two_readers_of_a_stopped_store_both_read_it(tmp_path: Path, tool_fake: FakeUpstream) -> None:
    serve = await ServeProcess(tmp_path, tool_fake.url).start()
    await send_openai(serve.url, 2)
    assert await serve.stop() == 0
    (tmp_path / "decoy").mkdir()
    decoy = await ServeProcess(tmp_path / "decoy", tool_fake.url).start()  # another store, on some port
    try:
        port = decoy.url.rsplit(":", 1)[1]
        env = {"TOOLWATCH_PORT": port}
        results = await asyncio.gather(
            *(run_cli("calls", "--json", "--store", serve.store, cwd=tmp_path, env=env) for _ in range(2))
        )
        for rc, out, err in results:
            assert rc == 0, err
            assert len(json.loads(out)) == 2  # this store's two calls, never the decoy's (none)
            assert err == ""
    finally:
        assert await decoy.stop() == 0


async def test_a_store_that_does_not_exist_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    for command in (["calls"], ["report"], ["sessions"], ["session", "h:x"], ["reclassify"]):
        rc, out, err = await run_cli(*command, "--store", f"chdb://{tmp_path}/nothing-here", cwd=tmp_path)
        assert rc == 2, command
        assert err.startswith("toolwatch: no toolwatch store at") and "Traceback" not in err
    assert not (tmp_path / "nothing-here").exists()


async def test_a_relative_embedded_store_is_refused_at_start(tmp_path: Path) -> None:
    rc, out, err = await run_cli("serve", "--port", "0", "--store", "chdb://relative/store", cwd=tmp_path)
    assert rc == 2 and "absolute path, chdb:///abs/path" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
async def test_children_die_with_serve_whatever_signal(tmp_path: Path, tool_fake: FakeUpstream) -> None:
    for sig in (signal.SIGKILL, signal.SIGSEGV):
        (tmp_path / sig.name).mkdir()
        serve = await ServeProcess(tmp_path / sig.name, tool_fake.url).start()
        recorder = (await serve.wait_for(lambda s: s.get("recorder_alive", False)))["recorder_pid"]
        assert serve.proc is not None
        os.kill(serve.proc.pid, sig)
        await serve.proc.wait()
        assert await gone_within(recorder, 1.0), sig.name
