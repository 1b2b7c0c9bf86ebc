"""The forwarder, driven by the official SDKs through the proxy to a fake upstream, checked in ClickHouse."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anthropic
import openai
import pytest

from tests.fakes.upstreams import FakeUpstream
from tests.harness import Harness
from toolwatch.demo.script import Reply, ToolCallSpec

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
SEARCH_TOOL = {"name": "search", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}


_clients: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = []


def oai(tw: Harness) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(base_url=f"{tw.url}/openai/v1", api_key="sk-test-secret", max_retries=0)
    _clients.append(client)
    return client


def ant(tw: Harness) -> anthropic.AsyncAnthropic:
    client = anthropic.AsyncAnthropic(base_url=f"{tw.url}/anthropic", api_key="sk-ant-secret", max_retries=0)
    _clients.append(client)
    return client


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _clients:
        await _clients.pop().close()


async def test_openai_text_reply_passes_through_and_is_recorded(tw: Harness, fake: FakeUpstream) -> None:
    fake.push(Reply(text="Bonjour", headers={"x-ratelimit-remaining-requests": "42"}))
    raw = await oai(tw).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "Bonjour"
    assert raw.headers["x-ratelimit-remaining-requests"] == "42"
    assert raw.headers["x-request-id"]
    # the upstream got the agent's key and body, unchanged
    got = fake.received[-1]
    assert got.headers["authorization"] == "Bearer sk-test-secret"
    assert json.loads(got.body) == {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    await tw.flush()
    rows = tw.rows("SELECT * FROM llm_calls")
    assert len(rows) == 1
    row = rows[0]
    assert (row["upstream"], row["endpoint"], row["model_requested"], row["status"]) == (
        "openai",
        "chat_completions",
        "gpt-4o",
        200,
    )
    assert row["finish_reason"] == "stop" and row["tool_call_count"] == 0
    assert row["input_tokens"] == reply.usage.prompt_tokens and row["output_tokens"] == reply.usage.completion_tokens
    assert row["request_id"] == raw.headers["x-request-id"]


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_parallel_tool_calls(tw: Harness, fake: FakeUpstream, stream: bool) -> None:
    calls = (
        ToolCallSpec("get_weather", '{"city": "Paris"}'),
        ToolCallSpec("get_weather", '{"city": "Tōkyō 東京"}'),
    )
    fake.push(Reply(tool_calls=calls, chunk_size=3 if stream else None))
    client = oai(tw)
    kwargs = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [WEATHER_TOOL],
    }
    if stream:
        async with client.chat.completions.stream(**kwargs, stream_options={"include_usage": True}) as s:
            final = await s.get_final_completion()
    else:
        final = await client.chat.completions.create(**kwargs)
    got = [(c.function.name, c.function.arguments) for c in final.choices[0].message.tool_calls]
    assert got == [(c.name, c.arguments) for c in calls]
    await tw.flush()
    rows = tw.rows("SELECT name, raw_arguments, arguments, tool_call_id FROM tool_calls ORDER BY call_index")
    assert [(r["name"], r["raw_arguments"]) for r in rows] == got
    assert [r["tool_call_id"] for r in rows] == [c.id for c in final.choices[0].message.tool_calls]
    assert json.loads(rows[1]["arguments"]) == {"city": "Tōkyō 東京"}
    call = tw.rows("SELECT stream, finish_reason, declared_tools, tool_call_count, output_tokens FROM llm_calls")[0]
    assert call["stream"] is stream and call["finish_reason"] == "tool_calls"
    assert call["declared_tools"] == ["get_weather"] and call["tool_call_count"] == 2
    assert call["output_tokens"] == final.usage.completion_tokens


async def test_streamed_invalid_arguments_are_kept_raw(tw: Harness, fake: FakeUpstream) -> None:
    fake.push(Reply(tool_calls=(ToolCallSpec("get_weather", '{"city": "Par'),), chunk_size=1))
    stream = await oai(tw).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}], tools=[WEATHER_TOOL], stream=True
    )
    fragments = [
        d.function.arguments
        async for chunk in stream
        for d in (chunk.choices[0].delta.tool_calls or [] if chunk.choices else [])
        if d.function and d.function.arguments
    ]
    assert "".join(fragments) == '{"city": "Par'
    await tw.flush()
    rows = tw.rows("SELECT raw_arguments, arguments FROM tool_calls")
    assert rows == [{"raw_arguments": '{"city": "Par', "arguments": None}]


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_tool_use_and_results(tw: Harness, fake: FakeUpstream, stream: bool) -> None:
    fake.push(Reply(text="Let me search.", tool_calls=(ToolCallSpec("search", '{"q":"llm"}'),), chunk_size=5))
    client = ant(tw)
    messages = [{"role": "user", "content": "find"}]
    kwargs = {"model": "claude-test-1", "max_tokens": 256, "tools": [SEARCH_TOOL], "messages": messages}
    if stream:
        async with client.messages.stream(**kwargs) as s:
            msg = await s.get_final_message()
    else:
        msg = await client.messages.create(**kwargs)
    tool_use = [b for b in msg.content if b.type == "tool_use"][0]
    assert tool_use.input == {"q": "llm"}
    fake.push(Reply(text="done"))
    follow = messages + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": tool_use.id,
                    "content": "Error: index offline",
                    "is_error": True,
                }
            ],
        },
    ]
    await client.messages.create(**{**kwargs, "messages": follow})
    await tw.flush()
    tc = tw.rows("SELECT name, tool_call_id, arguments FROM tool_calls")
    assert [(r["name"], r["tool_call_id"], json.loads(r["arguments"])) for r in tc] == [
        ("search", tool_use.id, {"q": "llm"})
    ]
    tr = tw.rows("SELECT tool_call_id, content, is_error FROM tool_results")
    assert tr == [{"tool_call_id": tool_use.id, "content": "Error: index offline", "is_error": True}]
    calls = tw.rows("SELECT finish_reason, input_tokens, output_tokens FROM llm_calls ORDER BY ts")
    assert [c["finish_reason"] for c in calls] == ["tool_use", "end_turn"]
    assert calls[0]["input_tokens"] == msg.usage.input_tokens and calls[0]["output_tokens"] == msg.usage.output_tokens


async def test_upstream_error_comes_back_unchanged_and_is_recorded(tw: Harness, fake: FakeUpstream) -> None:
    fake.push(Reply(status=429, error_type="rate_limit_error", error_message="slow down"))
    with pytest.raises(anthropic.RateLimitError) as info:
        await ant(tw).messages.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert "slow down" in str(info.value)
    await tw.flush()
    row = tw.rows("SELECT status, outcome, error FROM llm_calls")[0]
    assert row["status"] == 429 and row["outcome"] == "http_error" and "slow down" in row["error"]


async def test_unreachable_upstream_gives_provider_shaped_502(store_path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.harness import make_settings

    h = await Harness(make_settings(store_path, tmp_path / "spool", "http://127.0.0.1:9")).start()
    try:
        with pytest.raises(openai.InternalServerError) as info:
            await oai(h).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert info.value.status_code == 502
        assert info.value.body["code"] == "connect_error"  # type: ignore[index]
        with pytest.raises(anthropic.InternalServerError):
            await ant(h).messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        await h.flush()
        rows = h.rows("SELECT upstream, status, outcome FROM llm_calls ORDER BY upstream")
        assert [(r["upstream"], r["status"], r["outcome"]) for r in rows] == [
            ("anthropic", 502, "connect_error"),
            ("openai", 502, "connect_error"),
        ]
    finally:
        await h.close()
