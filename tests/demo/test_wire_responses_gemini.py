"""The fake upstream's Responses API and Gemini answers, read by the official SDKs (no proxy in between),
and by toolwatch's own parsers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.fakes.upstreams import FakeUpstream, Reply, ToolCallSpec, Usage, by_turn
from toolwatch.demo.script import Received
from toolwatch.providers.gemini import GeminiParser

WEATHER = ToolCallSpec("get_weather", '{"city": "Zürich", "days": [1, 2]}')
SEARCH = ToolCallSpec("search", '{"q": "naïve café ☕"}', id="call_given")
FUNCTION_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
async def oai(fake: FakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=fake.url + "/v1", api_key="sk-test", max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def gem(fake: FakeUpstream) -> AsyncIterator[genai.Client]:
    # an httpx client, not the SDK's aiohttp one (which warns on import under filterwarnings=error)
    http = httpx2.AsyncClient()
    client = genai.Client(api_key="g-test", http_options=types.HttpOptions(base_url=fake.url, httpx_async_client=http))
    yield client
    await http.aclose()


# OpenAI Responses


async def test_responses_body_with_reasoning_text_and_calls(fake: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    fake.push(Reply(text="Checking.", tool_calls=(WEATHER, SEARCH), usage=Usage(10, 4, cache_read_tokens=6)))
    response = await oai.responses.create(
        model="o4-mini", input="hi", tools=[FUNCTION_TOOL], reasoning={"effort": "low"}
    )
    assert [o.type for o in response.output] == ["reasoning", "message", "function_call", "function_call"]
    assert response.output_text == "Checking."
    calls = [(o.call_id, o.name, o.arguments) for o in response.output if o.type == "function_call"]
    assert calls == [("call_1", WEATHER.name, WEATHER.arguments), ("call_given", SEARCH.name, SEARCH.arguments)]
    assert response.status == "completed" and response.model == "o4-mini"
    assert response.usage is not None and response.usage.input_tokens == 16
    assert response.usage.input_tokens_details.cached_tokens == 6
    [received] = fake.received
    assert received.path == "/v1/responses" and received.headers["authorization"] == "Bearer sk-test"


@pytest.mark.parametrize("chunk_size", [None, 5])
async def test_responses_stream_is_what_the_sdk_accumulates(
    fake: FakeUpstream, oai: openai.AsyncOpenAI, chunk_size: int | None
) -> None:
    fake.push(Reply(text="Sure — ", tool_calls=(WEATHER,), chunk_size=chunk_size))
    async with oai.responses.stream(model="gpt-4.1", input="hi", tools=[FUNCTION_TOOL]) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in kinds and "response.output_text.delta" in kinds
    assert final.output_text == "Sure — "
    assert [(o.name, o.arguments) for o in final.output if o.type == "function_call"] == [
        (WEATHER.name, WEATHER.arguments)
    ]


async def test_responses_incomplete_and_error(fake: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    fake.push(Reply(tool_calls=(WEATHER,), finish_reason="max_output_tokens"))
    response = await oai.responses.create(model="m", input="hi")
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    fake.push(Reply(status=429, error_message="slow down"))
    with pytest.raises(openai.RateLimitError) as caught:
        await oai.responses.create(model="m", input="hi")
    assert caught.value.code == "rate_limit_exceeded"


def test_received_reads_responses_items_and_gemini_contents() -> None:
    body = {
        "input": [
            {"role": "user", "content": "hi"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]},
            {"role": "assistant", "content": "ok"},
        ]
    }
    received = Received.capture("POST", "/v1/responses", {}, json.dumps(body).encode())
    assert received.assistant_turns() == 2  # two runs of assistant items
    assert [(r.call_id, r.content) for r in received.tool_results()] == [("c1", "one"), ("c2", "two")]
    contents = {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": "x"}}}]},
        ]
    }
    received = Received.capture("POST", "/v1beta/models/m:generateContent", {}, json.dumps(contents).encode())
    assert received.assistant_turns() == 1
    assert [(r.call_id, r.content) for r in received.tool_results()] == [("f", '{"output":"x"}')]


# Gemini


async def test_gemini_body_with_text_and_calls(fake: FakeUpstream, gem: genai.Client) -> None:
    fake.push(Reply(text="Let me check.", tool_calls=(WEATHER, SEARCH), usage=Usage(20, 5, cache_read_tokens=8)))
    response = await gem.aio.models.generate_content(model="gemini-2.5-flash", contents="weather?")
    assert response.candidates and response.candidates[0].content and response.candidates[0].content.parts
    parts = response.candidates[0].content.parts
    assert parts[0].text == "Let me check."
    calls = [(p.function_call.id, p.function_call.name, p.function_call.args) for p in parts if p.function_call]
    assert calls == [
        (None, "get_weather", {"city": "Zürich", "days": [1, 2]}),
        ("call_given", "search", {"q": "naïve café ☕"}),
    ]
    assert parts[1].thought_signature  # the first call of the turn carries one
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.model_version == "gemini-2.5-flash"
    usage = response.usage_metadata
    assert usage is not None and (usage.prompt_token_count, usage.cached_content_token_count) == (28, 8)
    [received] = fake.received
    assert received.path.endswith("/models/gemini-2.5-flash:generateContent")
    assert received.headers["x-goog-api-key"] == "g-test"


async def test_gemini_sse_stream(fake: FakeUpstream, gem: genai.Client) -> None:
    fake.push(Reply(text="Streaming text", tool_calls=(WEATHER,), chunk_size=9))
    chunks = [c async for c in await gem.aio.models.generate_content_stream(model="gemini-2.5-pro", contents="x")]
    parts = [
        p for c in chunks for cand in c.candidates or [] for p in (cand.content.parts if cand.content else None) or []
    ]
    assert "".join(p.text for p in parts if p.text) == "Streaming text"
    assert [p.function_call.name for p in parts if p.function_call] == ["get_weather"]
    assert fake.received[-1].path.endswith(":streamGenerateContent?alt=sse")
    last = chunks[-1].candidates
    assert last and last[0].finish_reason == types.FinishReason.STOP


async def test_gemini_json_array_stream_without_alt_sse(fake: FakeUpstream) -> None:
    fake.push(Reply(text="Array text", tool_calls=(WEATHER,)))
    url = fake.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent?key=g-test"
    async with aiohttp.ClientSession() as session, session.post(url, json={"contents": []}) as resp:
        assert resp.headers["content-type"].startswith("application/json") and resp.content_length is None
        raw = await resp.read()
    chunks = json.loads(raw)
    assert isinstance(chunks, list) and chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    parser = GeminiParser()
    parser.feed(raw)
    result = parser.finish()
    assert (result.text, [c.name for c in result.tool_calls], result.complete) == ("Array text", ["get_weather"], True)


async def test_gemini_errors_and_invalid_arguments(fake: FakeUpstream, gem: genai.Client) -> None:
    fake.push(Reply(status=429, error_message="quota"))
    with pytest.raises(genai_errors.ClientError) as caught:
        await gem.aio.models.generate_content(model="m", contents="x")
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    fake.push(Reply(tool_calls=(ToolCallSpec("f", '{"a": '),)))
    with pytest.raises(genai_errors.ServerError) as server:
        await gem.aio.models.generate_content(model="m", contents="x")
    assert "not a JSON object" in str(server.value.message)


async def test_gemini_models_list_and_count_tokens(fake: FakeUpstream, gem: genai.Client) -> None:
    counted = await gem.aio.models.count_tokens(model="gemini-2.5-flash", contents="some text here")
    assert counted.total_tokens and counted.total_tokens > 0
    async with aiohttp.ClientSession() as session, session.get(fake.url + "/v1beta/models?key=k") as resp:
        assert (await resp.json())["models"][0]["name"] == "models/gemini-2.5-flash"


async def test_by_turn_drives_a_gemini_agent_loop(fake: FakeUpstream, gem: genai.Client) -> None:
    fake.script(by_turn(Reply(tool_calls=(WEATHER,)), Reply(text="Sunny.")))
    first = await gem.aio.models.generate_content(model="m", contents="weather?")
    assert first.candidates and first.candidates[0].content
    history = [
        types.Content(role="user", parts=[types.Part(text="weather?")]),
        first.candidates[0].content,
        types.Content(
            role="user", parts=[types.Part.from_function_response(name="get_weather", response={"output": "sun"})]
        ),
    ]
    second = await gem.aio.models.generate_content(model="m", contents=history)
    assert second.candidates and second.candidates[0].content and second.candidates[0].content.parts
    assert second.candidates[0].content.parts[0].text == "Sunny."
    assert fake.received[-1].tool_results()[0].call_id == "get_weather"
