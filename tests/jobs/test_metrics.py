"""Prometheus ``/metrics``: parsed with prometheus-client's own parser after SDK-driven traffic through a real
``serve``, its counters equal the rows in the store; and the cardinality of model and tool labels is
bounded whatever names requests supply."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import openai
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.upstreams import FakeUpstream
from tests.harness import TOOLS, ServeProcess, run_cli
from toolwatch.demo.script import Reply, ToolCallSpec, by_turn
from toolwatch.jobs.metrics import OTHER, RecordingMetrics
from toolwatch.schemas.records import LlmCall, ToolCall
from toolwatch.store.sink import Batch


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.setdefault(s.name, []).append((s.labels, s.value))
    return found


def total(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **match: str) -> float:
    return sum(v for labels, v in found.get(name, []) if all(labels.get(k) == w for k, w in match.items()))


async def test_counters_equal_the_rows_in_the_store(tmp_path: Path) -> None:
    script = by_turn(
        Reply(tool_calls=(ToolCallSpec("lookup", '{"key": "a"}'), ToolCallSpec("lookup", '{"key": '))),
        Reply(text="done"),
    )
    async with FakeUpstream(script) as fake:
        serve = await ServeProcess(tmp_path, fake.url, env={"TOOLWATCH_METRICS_INTERVAL": "1"}).start()
        try:
            async with openai.AsyncOpenAI(base_url=f"{serve.url}/openai/v1", api_key="sk-x", max_retries=0) as c:
                for i in range(3):
                    messages: list[Any] = [{"role": "user", "content": f"task {i}"}]
                    first = await c.chat.completions.create(model="gpt-test", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
                    calls = first.choices[0].message.tool_calls or []
                    messages.append(first.choices[0].message.model_dump(exclude_none=True))
                    for n, call in enumerate(calls):
                        content = "ok" if n == 0 else "Error: bad arguments"
                        messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
                    await c.chat.completions.create(model="gpt-test", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
            await serve.wait_for(lambda s: s.get("calls_written", 0) == 6)
            for _ in range(100):  # the session gauges come from the analyzers on a timer
                code, text = await serve.get_raw("/metrics")
                # both windows: a round computes 1h, then 24h, and calls may land between the two
                gauges = [f'toolwatch_session_success_ratio{{model="gpt-test",window="{w}"}}' for w in ("1h", "24h")]
                if all(g in text for g in gauges):
                    break
                await asyncio.sleep(0.2)
        finally:
            assert await serve.stop() == 0
    found = samples(text)
    rc, out, err = await run_cli("report", "--json", "--since", "1h", "--store", serve.store)
    assert rc == 0, err
    [row] = json.loads(out)
    assert total(found, "toolwatch_llm_calls_total", model="gpt-test", outcome="ok") == row["llm_calls"] == 6
    assert total(found, "toolwatch_tool_calls_total", model="gpt-test", tool="lookup") == row["tool_calls"] == 6
    assert total(found, "toolwatch_malformed_tool_calls_total", kind="invalid_json") == 3
    assert row["malformed_by_kind"] == {"invalid_json": 3}
    assert total(found, "toolwatch_tool_results_total", tool="lookup", outcome="error") == row["tool_errors"] == 3
    assert total(found, "toolwatch_tool_results_total", tool="lookup", outcome="ok") == 3
    assert total(found, "toolwatch_tokens_total", type="input") == row["input_tokens"]
    assert total(found, "toolwatch_tokens_total", type="output") == row["output_tokens"]
    assert total(found, "toolwatch_upstream_latency_seconds_count", model="gpt-test") == 6
    assert total(found, "toolwatch_proxy_overhead_seconds_count", upstream="openai") == 6
    assert total(found, "toolwatch_records_dropped_total") == 0
    assert total(found, "toolwatch_dead_letters") == 0
    assert "toolwatch_spool_bytes" in found and "toolwatch_recorder_lag_seconds" in found
    [(labels, ratio)] = [(la, v) for la, v in found["toolwatch_session_success_ratio"] if la["window"] == "1h"]
    assert labels["model"] == "gpt-test" and ratio == row["session_success_rate"]


def call(model: str, status: int = 200, tool: str = "") -> tuple[LlmCall, list[ToolCall]]:
    cid = uuid.uuid4()
    now = datetime.now(UTC)
    c = LlmCall(
        call_id=cid,
        ts=now,
        upstream="openai",
        api="openai",
        endpoint="chat_completions",
        method="POST",
        path="/v1/chat/completions",
        model=model,
        status=status,
        tool_call_count=1 if tool else 0,
    )
    tools = (
        [
            ToolCall(
                tool_call_uid=uuid.uuid4(),
                call_id=cid,
                ts=now,
                upstream="openai",
                model=model,
                call_index=0,
                tool_call_id=f"id-{uuid.uuid4()}",
                name=tool,
                raw_arguments="{}",
            )
        ]
        if tool
        else []
    )
    return c, tools


def test_500_requested_model_names_cannot_grow_the_series() -> None:
    metrics = RecordingMetrics(max_models=50, max_tools=200)
    batch = Batch()
    for i in range(500):
        c, tools = call(f"model-{i}", tool=f"tool-{i}")
        batch.add(c, tools, [], None)
    for i in range(20):  # names that never got a 2xx never get a series
        c, _ = call(f"refused-{i}", status=404)
        batch.add(c, [], [], None)
    metrics.observe(batch)
    found = samples(metrics.exposition().decode())
    models = Counter(la["model"] for la, _ in found["toolwatch_llm_calls_total"])
    assert len(models) == 51 and models[OTHER] >= 1
    assert not any(m.startswith("refused-") for m in models)
    assert total(found, "toolwatch_llm_calls_total") == 520  # nothing lost, only folded
    tools = {la["tool"] for la, _ in found["toolwatch_tool_calls_total"]}
    assert len(tools) == 201 and OTHER in tools
    assert total(found, "toolwatch_llm_calls_total", model=OTHER) == 520 - 50


async def test_metrics_follow_the_access_rules(tmp_path: Path, tool_fake: FakeUpstream) -> None:
    serve = await ServeProcess(tmp_path, tool_fake.url, env={"TOOLWATCH_ADMIN_TOKEN": "s3cret"}).start()
    try:
        code, _ = await serve.get_raw("/metrics")
        assert code == 401
        headers = {"Authorization": "Bearer s3cret"}
        async with aiohttp.ClientSession() as s, s.get(serve.url + "/metrics", headers=headers) as r:
            assert r.status == 200 and "toolwatch_proxy_overhead_seconds" in await r.text()
    finally:
        await serve.stop()
