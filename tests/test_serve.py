"""``toolwatch serve`` end to end, as a subprocess: draining on SIGTERM, a store that refuses or hangs,
the spool cap, and a recorder that crashes. The agent side is always the official SDKs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import anthropic

from tests.fakes.upstreams import FakeUpstream
from tests.harness import ServeProcess, StoreHolder, run_cli, send_openai


async def test_sigterm_drains_spool_into_store(tmp_path: Path, tool_fake: FakeUpstream) -> None:
    tw = await ServeProcess(tmp_path, tool_fake.url).start()
    try:
        code, health = await tw.get("/healthz")
        assert code == 200 and health["proxy"] == "ok"
        await send_openai(tw.url, 5)
        async with anthropic.AsyncAnthropic(base_url=f"{tw.url}/anthropic", api_key="k", max_retries=0) as a:
            await a.messages.create(model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    finally:
        rc = await tw.stop(signal.SIGTERM)
    assert rc == 0, tw.stderr.decode()[-2000:]
    # the store is free again: the CLI opens it itself, no server involved
    rc, out, err = await run_cli("calls", "--last", "50", "--json", "--store", tw.store, cwd=tmp_path)
    assert rc == 0, err
    rows = json.loads(out)
    assert sorted(r["upstream"] for r in rows) == ["anthropic"] + ["openai"] * 5
    openai_rows = [r for r in rows if r["upstream"] == "openai"]
    assert all(
        r["tool_calls"][0]["name"] == "lookup" and r["tool_calls"][0]["raw_arguments"] == '{"key": "v"}'
        for r in openai_rows
    )


async def test_requests_flow_while_store_is_held_then_records_land(tmp_path: Path, tool_fake: FakeUpstream) -> None:
    holder = await StoreHolder(tmp_path / "store").start()
    tw = await ServeProcess(tmp_path, tool_fake.url).start()
    try:
        await send_openai(tw.url, 8)
        st = await tw.wait_for(lambda s: s.get("spool_lag_bytes", 0) > 0 and s.get("exchanges_spooled", 0) == 8)
        assert st["store_reachable"] is False and st["calls_written"] == 0
        code, health = await tw.get("/healthz")
        assert health["status"] == "degraded" and health["store_reachable"] is False
        await holder.release()
        st = await tw.wait_for(lambda s: s.get("calls_written", 0) == 8)
        assert st["records_dropped"] == 0
        code, calls = await tw.get("/_toolwatch/api/calls?last=100")
        assert code == 200 and len(calls) == 8
        assert {c["tool_calls"][0]["name"] for c in calls} == {"lookup"}
    finally:
        await holder.release()
        assert await tw.stop() == 0


async def test_store_that_never_answers_does_not_slow_requests(tmp_path: Path, tool_fake: FakeUpstream) -> None:
    hung: list[asyncio.StreamWriter] = []

    async def accept_and_hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)

    server = await asyncio.start_server(accept_and_hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tw = ServeProcess(tmp_path, tool_fake.url, env={"TOOLWATCH_STORE_TIMEOUT": "1", "TOOLWATCH_SHUTDOWN_TIMEOUT": "1"})
    tw.store = f"http://127.0.0.1:{port}"
    await tw.start()
    try:
        await send_openai(tw.url, 6)
        st = await tw.wait_for(lambda s: s.get("exchanges_spooled", 0) == 6 and s.get("last_store_error", 0))
        assert st["calls_written"] == 0 and st["store_reachable"] is False
        assert len(hung) >= 1  # the recorder really was stuck on the store
    finally:
        assert await tw.stop() == 0
        for w in hung:
            w.close()
        server.close()
        await server.wait_closed()
    # the store comes back (here: the embedded one) and every spooled exchange lands
    tw2 = ServeProcess(tmp_path, tool_fake.url)
    await tw2.start()
    try:
        st = await tw2.wait_for(lambda s: s.get("calls_written", 0) == 6)
        assert st["spool_lag_bytes"] == 0
    finally:
        assert await tw2.stop() == 0


async def test_spool_cap_drops_are_counted(tmp_path: Path, tool_fake: FakeUpstream) -> None:
    holder = await StoreHolder(tmp_path / "store").start()
    tw = ServeProcess(tmp_path, tool_fake.url, env={"TOOLWATCH_SPOOL_CAP_BYTES": str(1024 * 1024)})
    await tw.start()
    try:
        await send_openai(tw.url, 30, body_pad=60_000)  # every request still succeeds
        st = await tw.wait_for(lambda s: s.get("exchanges_spooled", 0) + s.get("records_dropped", 0) == 30)
        assert st["records_dropped"] > 0 and st["exchanges_spooled"] > 0
        assert st["spool_bytes"] <= 1024 * 1024
    finally:
        await holder.release()
        assert await tw.stop() == 0
    assert b"spool full" in tw.stderr


async def test_recorder_crash_is_restarted_and_nothing_is_lost(tmp_path: Path, tool_fake: FakeUpstream) -> None:
    tw = await ServeProcess(tmp_path, tool_fake.url).start()
    try:
        await send_openai(tw.url, 3)
        st = await tw.wait_for(lambda s: s.get("calls_written", 0) == 3)
        os.kill(st["recorder_pid"], signal.SIGKILL)
        await send_openai(tw.url, 4)  # served while the recorder is down or restarting
        st = await tw.wait_for(
            lambda s: (
                s.get("recorder_alive", 0) and s.get("recorder_restarts", 0) == 1 and s.get("calls_written", 0) == 4
            )
        )
        code, calls = await tw.get("/_toolwatch/api/calls?last=100")
        assert len(calls) == 7 and len({c["call_id"] for c in calls}) == 7
        # while the server holds the store, the CLI reads through it
        rc, out, err = await run_cli("calls", "--last", "3", "--store", tw.store, "--json", cwd=tmp_path)
        assert rc == 0, err
        assert [r["call_id"] for r in json.loads(out)] == [c["call_id"] for c in calls[:3]]
        rc, out, _ = await run_cli("calls", "--last", "2", "--server", tw.url, cwd=tmp_path)
        assert rc == 0 and out.count("lookup(") == 2
        # the report, sessions and reclassify go through the server too
        rc, out, err = await run_cli("report", "--since", "1h", "--json", "--store", tw.store, cwd=tmp_path)
        assert rc == 0, err
        (row,) = json.loads(out)
        assert (row["model"], row["llm_calls"], row["tool_calls"], row["malformed_calls"]) == ("gpt-test", 7, 7, 0)
        rc, out, err = await run_cli("sessions", "--json", "--store", tw.store, cwd=tmp_path)
        assert rc == 0 and len(json.loads(out)) == 7, err  # no header, and every call opens a new conversation
        rc, out, err = await run_cli("reclassify", "--store", tw.store, cwd=tmp_path)
        assert rc == 0 and "changed 0" in out, err
    finally:
        assert await tw.stop() == 0
