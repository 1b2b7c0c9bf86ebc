"""End to end, with default settings: agents drive the official openai SDK through ``toolwatch serve``.

- ``support-bot`` runs 150 sessions on a model with 2 % malformed sessions (3 of 150), then 150 on one with
  12 % (18 of 150). Within one evaluation interval after the traffic, ``toolwatch check --agent support-bot``
  exits 1, ``toolwatch alerts --json`` names the new model, and a webhook receiver on 127.0.0.1 gets exactly
  one "open" notification.
- ``steady-bot`` switches to an equally good model (3 of 150 on both): ``check`` stays at 0.

A session: the model calls ``lookup``; a malformed call (invalid JSON arguments) is answered with a request
for valid JSON and the model then calls it properly, so only the malformed indicator differs between the
models (the session still succeeds).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web

from tests.fakes.upstreams import FakeUpstream
from tests.harness import ServeProcess, run_cli
from toolwatch.demo.script import Received, Reply, ToolCallSpec

TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
SESSIONS = 150
ALERT_INTERVAL = 30.0  # the default; the test waits at most one interval (plus the recorder's lag)


def reply(received: Received) -> Reply:
    last = received.messages[-1]
    if last.get("role") == "user":
        bad = "[bad]" in last.get("content", "")
        return Reply(tool_calls=(ToolCallSpec("lookup", '{"key": ' if bad else '{"key": "k"}'),))
    if last.get("content") == "send valid JSON arguments":
        return Reply(tool_calls=(ToolCallSpec("lookup", '{"key": "k"}'),))
    return Reply(text="Here is what I found.")


def bad_sessions(count: int, hits: int) -> set[int]:
    return {(k * count) // hits for k in range(hits)}


async def session(client: openai.AsyncOpenAI, agent: str, model: str, n: int, bad: bool) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "You look things up for customers."},
        {"role": "user", "content": f"{agent} ticket {n}" + (" [bad]" if bad else "")},
    ]
    headers = {"Toolwatch-Agent": agent}
    while True:
        r = await client.chat.completions.create(
            model=model,
            messages=messages,
            tools=TOOLS,  # type: ignore[arg-type]
            extra_headers=headers,
        )
        message = r.choices[0].message
        if not message.tool_calls:
            return
        messages.append(message.model_dump(exclude_none=True))
        call = message.tool_calls[0]
        try:
            json.loads(call.function.arguments)  # type: ignore[union-attr]
            result = "found: order shipped"
        except ValueError:
            result = "send valid JSON arguments"
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})


async def agent_run(client: openai.AsyncOpenAI, agent: str, models: tuple[str, str], hits: tuple[int, int]) -> None:
    for model, h in zip(models, hits, strict=True):
        marked = bad_sessions(SESSIONS, h)
        for i in range(SESSIONS):
            await session(client, agent, model, i, i in marked)


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.headers.get("Idempotency-Key", ""), await request.json()))
        return web.json_response({"ok": True})


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rx.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield rx, f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


@pytest.mark.timeout(300)
async def test_a_worse_model_alerts_within_one_interval(tmp_path: Path, receiver: tuple[Receiver, str]) -> None:
    rx, hook = receiver
    async with FakeUpstream() as fake:
        fake.script(reply)
        serve = ServeProcess(tmp_path, fake.url, env={"TOOLWATCH_ALERT_WEBHOOK_URL": hook})
        await serve.start()
        try:
            client = openai.AsyncOpenAI(base_url=f"{serve.url}/openai/v1", api_key="sk-test", max_retries=0)
            async with client:
                await asyncio.gather(
                    agent_run(client, "support-bot", ("steady-1", "shaky-2"), (3, 18)),
                    agent_run(client, "steady-bot", ("steady-1", "steady-2"), (3, 3)),
                )
            sent = len([r for r in fake.received if r.path.endswith("/chat/completions")])
            await serve.wait_for(lambda st: st["calls_written"] >= sent)
            traffic_done = time.monotonic()

            env = {"TOOLWATCH_STORE": serve.store}
            rc, out, err = -1, "", ""
            while time.monotonic() - traffic_done < ALERT_INTERVAL + 15:
                rc, out, err = await run_cli("check", "--agent", "support-bot", cwd=tmp_path, env=env)
                if rc != 0:
                    break
                await asyncio.sleep(1)
            assert rc == 1, (out, err, serve.stderr.decode()[-3000:])
            assert "REGRESSION" in out

            rc, out, err = await run_cli("alerts", "--json", cwd=tmp_path, env=env)
            assert rc == 0, err
            alerts = json.loads(out)
            assert [(a["agent"], a["old_model"], a["new_model"], a["kind"], a["state"]) for a in alerts] == [
                ("support-bot", "steady-1", "shaky-2", "switch_regression", "open")
            ]
            assert alerts[0]["metric"] == "malformed_session_rate"
            assert (alerts[0]["n_before"], alerts[0]["n_after"]) == (SESSIONS, SESSIONS)

            rc, out, err = await run_cli("check", "--agent", "steady-bot", cwd=tmp_path, env=env)
            assert rc == 0, (out, err)

            deadline = time.monotonic() + 20
            while not rx.received and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(1)  # anything more would arrive now
            assert [(body["event"], body["alert"]["new_model"]) for _, body in rx.received] == [
                ("alert.open", "shaky-2")
            ]
            key, body = rx.received[0]
            assert key and key == body["idempotency_key"] and body["alert"]["id"] == alerts[0]["id"]
        finally:
            await serve.stop()
