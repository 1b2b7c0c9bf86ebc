"""The workload's choices, and the workload run straight against the scripted upstream (no toolwatch in
between): reproducible, bounded by sessions or time, and readable by the official SDKs."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter

import anthropic
import openai
import pytest

from toolwatch.demo import AGENTS, DemoError, DemoStats, DemoUpstream, run_demo
from toolwatch.demo.dialects import ToolCall
from toolwatch.demo.workload import Workload, _reject


def test_the_plan_is_seeded_and_switches_support_bot_halfway() -> None:
    a, b, other = Workload(7, switch_at=30), Workload(7, switch_at=30), Workload(8, switch_at=30)
    plans = [a.plan(n) for n in range(60)]
    same = [b.plan(n) for n in range(60)]
    assert [(p.agent.name, p.task, p.stream, sorted(p.headers)) for p in plans] == [
        (p.agent.name, p.task, p.stream, sorted(p.headers)) for p in same
    ]
    assert [p.task for p in plans] != [other.plan(n).task for n in range(60)]
    assert {p.agent.name for p in plans} == {agent.name for agent in AGENTS}
    models = [(p.number, p.route.model) for p in plans if p.agent.name == "support-bot"]
    assert {m for n, m in models if n < 30} == {"gpt-4o"} and {m for n, m in models if n >= 30} == {"glm-4.5"}
    assert all(not p.headers for p in plans if p.agent.name == "nightly-triage")
    named = [p for p in plans if p.agent.headers]
    assert all(p.headers["Toolwatch-Agent"] == p.agent.name for p in named)
    with_id = sum("Toolwatch-Session-Id" in p.headers for p in named)
    assert len(named) // 2 < with_id < len(named)
    assert len({p.headers.get("Toolwatch-Session-Id") for p in named if p.headers.get("Toolwatch-Session-Id")}) == (
        with_id
    )


def test_the_agent_answers_calls_it_cannot_run() -> None:
    support = next(a for a in AGENTS if a.name == "support-bot")
    assert _reject(support, ToolCall("1", "get_order", "{}")).startswith("Error: unknown tool 'get_order'")
    assert "not valid JSON" in _reject(support, ToolCall("1", "lookup_order", '{"order_id": "ORD-1'))
    assert "invalid arguments" in _reject(support, ToolCall("1", "lookup_order", '{"order_id": 12345}'))
    assert _reject(support, ToolCall("1", "lookup_order", '{"order_id": "ORD-12345"}')) == ""


async def test_a_run_straight_at_the_upstream_is_reproducible() -> None:
    runs: list[DemoStats] = []
    for _ in range(2):
        async with DemoUpstream(seed=3, latency=0) as up:
            runs.append(await run_demo(up.url, seed=3, sessions=40, pace=0, concurrency=10, tool_delay=0))
            assert up.requests == runs[-1].llm_calls
    first, second = runs
    assert first == second
    assert first.sessions == 40 and first.failed_sessions == 0
    assert first.tool_errors > first.rejected_calls > 0
    assert first.refused_calls > 0  # refused first attempts, each got past by a retry
    assert sum(first.by_agent.values()) == 40 and sum(first.by_model.values()) == first.llm_calls


async def test_duration_bounds_a_run_and_a_dead_proxy_stops_it() -> None:
    async with DemoUpstream(latency=0) as up:
        started = time.monotonic()
        stats = await run_demo(up.url, duration=0.5, pace=20, tool_delay=0)
        assert 0.5 <= time.monotonic() - started < 5
        assert 5 <= stats.sessions <= 12
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DemoError, match="cannot reach toolwatch"):
        await asyncio.wait_for(run_demo(f"http://127.0.0.1:{port}", pace=0), 10)


async def test_cancelling_a_run_ends_its_sessions() -> None:
    stats = DemoStats()
    async with DemoUpstream(latency=0.05) as up:
        task = asyncio.ensure_future(run_demo(up.url, pace=50, tool_delay=0.01, stats=stats))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert stats.llm_calls > 0


@pytest.mark.filterwarnings("ignore:The model 'claude-sonnet-4-5' is deprecated:DeprecationWarning")
async def test_the_official_sdks_read_the_scripted_models() -> None:
    async with DemoUpstream(latency=0) as up:
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        async with openai.AsyncOpenAI(base_url=up.url + "/glm/api/paas/v4", api_key="k", max_retries=0) as oai:
            kinds = Counter[str]()
            for i in range(30):
                r = await oai.chat.completions.create(
                    model="glm-4.5",
                    messages=[{"role": "user", "content": f"[#{i}] Weather in Osaka?"}],
                    tools=tools,  # type: ignore[arg-type]
                )
                choice = r.choices[0]
                kinds["calls" if choice.message.tool_calls else "text"] += 1
                assert r.model == "glm-4.5"
            assert kinds["calls"] > 15
        async with anthropic.AsyncAnthropic(base_url=up.url, api_key="k", max_retries=0) as ant:
            async with ant.messages.stream(
                model="claude-sonnet-4-5",
                max_tokens=100,
                messages=[{"role": "user", "content": "[#1] Bug in src/app.py"}],
                tools=[{"name": "read_file", "input_schema": {"type": "object"}}],
            ) as stream:
                message = await stream.get_final_message()
            assert message.model == "claude-sonnet-4-5" and message.stop_reason in ("tool_use", "end_turn")
            for block in message.content:
                if block.type == "tool_use":
                    assert block.name in ("read_file", "open_file") and json.dumps(block.input)
