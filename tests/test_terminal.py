"""``toolwatch serve`` in a terminal (a pty, through pexpect), driven the way a person does: read the
banner, send traffic, press Ctrl-C while a stream is in flight, and again.

The store is held by another process the whole time, so nothing is stored while serve runs: every answered
exchange is in the spool only, and must still be there after the forced stop, for the next serve to record.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
from pathlib import Path

import aiohttp
import pexpect

from tests.fakes.upstreams import FakeUpstream, Reply
from tests.harness import ServeProcess, StoreHolder


async def expect(child: pexpect.spawn, pattern: object, timeout: float = 30) -> None:
    await asyncio.to_thread(child.expect, pattern, timeout=timeout)


async def test_ctrl_c_twice_stops_at_once_and_loses_nothing_answered(tmp_path: Path, tool_fake: FakeUpstream) -> None:
    holder = await StoreHolder(tmp_path / "store").start()
    env = {
        **os.environ,
        "TOOLWATCH_UPSTREAM_OPENAI_URL": tool_fake.url,
        "TOOLWATCH_SHUTDOWN_TIMEOUT": "300",  # only the second Ctrl-C can make it quick
        "TOOLWATCH_SEGMENT_MAX_AGE": "0.2",
    }
    args = ["-m", "toolwatch", "serve", "--port", "0", "--store", f"chdb://{tmp_path}/store"]
    args += ["--spool", str(tmp_path / "spool")]
    screen = io.StringIO()
    child = pexpect.spawn(sys.executable, args, cwd=str(tmp_path), env=env, encoding="utf-8", dimensions=(50, 200))
    child.logfile_read = screen
    try:
        await expect(child, r"toolwatch listening on (http://[0-9.:]+)\r\n")
        url = child.match.group(1)
        await expect(child, r"Ctrl-C stops\.")
        assert f"OPENAI_BASE_URL={url}/openai/v1" in screen.getvalue()
        assert f"dashboard  {url}/_toolwatch/" in screen.getvalue()

        answered: set[str] = set()
        async with aiohttp.ClientSession() as http:
            for i in range(6):
                body = {"model": "gpt-test", "messages": [{"role": "user", "content": f"question {i}"}]}
                headers = {"Toolwatch-Session-Id": f"answered-{i}"}
                async with http.post(f"{url}/openai/v1/chat/completions", json=body, headers=headers) as r:
                    if r.status == 200 and (await r.json())["choices"]:
                        answered.add(f"answered-{i}")
            tool_fake.push(Reply(text="word " * 60, chunk_size=8, chunk_delay=1.0))  # minutes long
            body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "slow"}]}
            headers = {"Toolwatch-Session-Id": "in-flight"}
            async with http.post(f"{url}/openai/v1/chat/completions", json=body, headers=headers) as stream:
                await stream.content.readany()  # the stream has begun
                child.sendintr()
                await expect(child, "waiting for 1 in-flight request")
                child.sendintr()
                await expect(child, "stopping at once")
                with contextlib.suppress(OSError):  # serve may be gone already
                    child.sendintr()  # a third one is no traceback either
                await expect(child, pexpect.EOF)  # long before the stream or shutdown_timeout would end
                with_end = False
                try:
                    async for chunk in stream.content.iter_any():
                        with_end = with_end or b"[DONE]" in chunk
                except aiohttp.ClientError:
                    pass
                assert not with_end  # the stream was cut off, not waited for
        child.close()
        assert child.exitstatus == 130, screen.getvalue()[-3000:]
    finally:
        if child.isalive():
            child.terminate(force=True)
        await holder.release()
    said = screen.getvalue()
    assert "Traceback" not in said and "Unclosed" not in said, said[-3000:]
    assert len(answered) == 6

    # the next serve records what the spool kept: every answered exchange
    again = ServeProcess(tmp_path, tool_fake.url, env={"TOOLWATCH_RECORDER_PRIORITY": "normal"})
    await again.start()
    try:
        await again.wait_for(lambda s: s.get("calls_written", 0) >= len(answered) and s.get("spool_lag_bytes") == 0)
        code, calls = await again.get("/_toolwatch/api/calls?last=100")
    finally:
        assert await again.stop() == 0
    assert code == 200
    recorded = {c["session_id"] for c in calls if c["outcome"] == "ok"}
    assert recorded >= answered, answered - recorded
