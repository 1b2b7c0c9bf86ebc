"""More APIs through the proxy: the official SDKs (OpenAI Responses, google-genai, the Azure client, an
OpenAI-compatible named upstream) drive toolwatch against the fake upstream; the rows are checked in
ClickHouse."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import openai
import pytest
from google import genai
from google.genai import types

from tests.fakes.upstreams import FakeUpstream
from tests.harness import Harness
from toolwatch.demo.script import Reply, ToolCallSpec
from toolwatch.schemas.settings import Settings, load_settings

WEATHER_FN: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}
WEATHER_DECL = types.FunctionDeclaration(
    name="get_weather",
    parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CHAT_TOOL: Any = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": WEATHER_FN["parameters"]},
}


def settings_for(store_path: Path, spool: Path, upstream: str) -> Settings:
    """Every upstream flavour pointed at the fake: the built-ins, an Azure one and a GLM-like one whose
    base URL has its own path prefix."""
    env = {
        "TOOLWATCH_UPSTREAM_OPENAI_URL": upstream,
        "TOOLWATCH_UPSTREAM_ANTHROPIC_URL": upstream,
        "TOOLWATCH_UPSTREAM_GEMINI_URL": upstream,
        "TOOLWATCH_UPSTREAM_AZ_URL": upstream,
        "TOOLWATCH_UPSTREAM_AZ_API": "azure",
        "TOOLWATCH_UPSTREAM_GLM_URL": upstream + "/api/paas/v4",
        "TOOLWATCH_UPSTREAM_GLM_API": "openai",
    }
    overrides = {
        "store": f"chdb://{store_path}",
        "database": f"t_{uuid.uuid4().hex[:12]}",
        "spool": str(spool),
        "batch_interval": 0.05,
        "segment_max_age": 0.2,
    }
    return load_settings(None, environ=env, overrides=overrides)


@pytest.fixture
async def tw(store_path: Path, tmp_path: Path, fake: FakeUpstream) -> AsyncIterator[Harness]:
    h = Harness(settings_for(store_path, tmp_path / "spool", fake.url))
    await h.start()
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
async def oai(tw: Harness) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=f"{tw.url}/openai/v1", api_key="sk-test", max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def gem(tw: Harness) -> AsyncIterator[genai.Client]:
    http = httpx2.AsyncClient()  # the SDK's aiohttp transport warns under filterwarnings=error
    options = types.HttpOptions(base_url=f"{tw.url}/gemini", api_version="v1beta", httpx_async_client=http)
    yield genai.Client(api_key="g-test", http_options=options)
    await http.aclose()


def calls_and_results(tw: Harness) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    calls = tw.rows("SELECT tool_call_id, name, raw_arguments, malformed_kind FROM tool_calls ORDER BY ts, call_index")
    results = tw.rows("SELECT tool_call_id, content, is_error FROM tool_results ORDER BY ts")
    return calls, results


# --- OpenAI Responses -------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_responses_with_previous_response_id(
    tw: Harness, fake: FakeUpstream, oai: openai.AsyncOpenAI, stream: bool
) -> None:
    fake.push(Reply(tool_calls=(ToolCallSpec("get_weather", '{"city": "Paris"}'),), model="gpt-4.1-2025-04-14"))
    kwargs: Any = {"model": "gpt-4.1", "tools": [WEATHER_FN], "instructions": "Be brief."}
    if stream:
        async with oai.responses.stream(input="weather in Paris?", **kwargs) as s:
            first = await s.get_final_response()
    else:
        first = await oai.responses.create(input="weather in Paris?", **kwargs)
    [call] = [o for o in first.output if o.type == "function_call"]
    fake.push(Reply(text="Sunny, 21°C."))
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21"}
    second = await oai.responses.create(previous_response_id=first.id, input=[output], **kwargs)
    assert second.output_text == "Sunny, 21°C."
    await tw.flush(expect=2)
    rows = tw.rows(
        "SELECT endpoint, stream, model_requested, model_returned, finish_reason, tool_call_count, tool_result_count,"
        " response_id, previous_response_id, conv_key FROM llm_calls ORDER BY ts"
    )
    assert [r["endpoint"] for r in rows] == ["responses", "responses"]
    assert [r["stream"] for r in rows] == [stream, False]
    assert (rows[0]["model_requested"], rows[0]["model_returned"]) == ("gpt-4.1", "gpt-4.1-2025-04-14")
    assert [r["finish_reason"] for r in rows] == ["completed", "completed"]
    assert [(r["tool_call_count"], r["tool_result_count"]) for r in rows] == [(1, 0), (0, 1)]
    assert rows[1]["previous_response_id"] == rows[0]["response_id"] == first.id
    calls, results = calls_and_results(tw)
    assert calls == [
        {
            "tool_call_id": call.call_id,
            "name": "get_weather",
            "raw_arguments": '{"city": "Paris"}',
            "malformed_kind": "",
        }
    ]
    assert results == [{"tool_call_id": call.call_id, "content": "sunny, 21", "is_error": None}]
    await one_session_either_way(tw)


async def one_session_either_way(tw: Harness) -> None:
    """The two calls form one successful session, linked by the recorder and, without it, by SQL."""
    from toolwatch.analyzers import runner
    from toolwatch.analyzers.params import analyzer_params

    def sessions() -> list[tuple[int, str]]:
        params = analyzer_params("sessions", {"since": "1h"})
        rows = tw.store.run(lambda c: runner.run(c, "sessions", **params))
        return [(r["steps"], r["outcome"]) for r in rows]

    assert sessions() == [(2, "success")]
    tw.store.run(
        lambda c: c.command("ALTER TABLE llm_calls UPDATE link_key = '' WHERE 1", settings={"mutations_sync": 2})
    )
    assert tw.query("SELECT countIf(link_key != '') FROM llm_calls") == [(0,)]
    assert sessions() == [(2, "success")]


async def test_responses_with_the_whole_input_resent(tw: Harness, fake: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    spec = ToolCallSpec("get_weather", '{"city": "Oslo"}')
    fake.push(Reply(text="Checking.", tool_calls=(spec,)))
    history: list[Any] = [{"role": "user", "content": "weather in Oslo?"}]
    first = await oai.responses.create(model="gpt-4.1", input=history, tools=[WEATHER_FN], store=False)
    [call] = [o for o in first.output if o.type == "function_call"]
    history += [o.model_dump(exclude_none=True) for o in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "Error: station offline"})
    fake.push(Reply(text="The station is offline.", chunk_size=4))
    async with oai.responses.stream(model="gpt-4.1", input=history, tools=[WEATHER_FN], store=False) as s:
        await s.get_final_response()
    await tw.flush(expect=2)
    rows = tw.rows("SELECT prior_tool_call_ids, message_count, conv_key, tool_result_count FROM llm_calls ORDER BY ts")
    assert rows[1]["prior_tool_call_ids"] == [call.call_id] and rows[1]["message_count"] == 4
    assert rows[0]["conv_key"] and rows[0]["conv_key"] == rows[1]["conv_key"]  # one session without headers
    calls, results = calls_and_results(tw)
    assert [c["tool_call_id"] for c in calls] == [call.call_id]
    assert results == [{"tool_call_id": call.call_id, "content": "Error: station offline", "is_error": None}]


# --- Gemini ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("with_id", [False, True])
async def test_gemini_function_call_then_function_response(
    tw: Harness, fake: FakeUpstream, gem: genai.Client, stream: bool, with_id: bool
) -> None:
    spec = ToolCallSpec("get_weather", '{"city": "Paris"}', id="fc-given-1" if with_id else None)
    fake.push(Reply(text="Let me look." if stream else "", tool_calls=(spec,), model="gemini-2.5-flash-001"))
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER_DECL])], system_instruction="Be brief."
    )
    history = [types.Content(role="user", parts=[types.Part(text="weather in Paris?")])]
    if stream:
        chunks = [
            c
            async for c in await gem.aio.models.generate_content_stream(
                model="gemini-2.5-flash", contents=history, config=config
            )
        ]
        parts = [
            p
            for c in chunks
            for cand in c.candidates or []
            for p in (cand.content.parts if cand.content else None) or []
        ]
    else:
        first = await gem.aio.models.generate_content(model="gemini-2.5-flash", contents=history, config=config)
        assert first.candidates and first.candidates[0].content
        parts = first.candidates[0].content.parts or []
    call = next(p.function_call for p in parts if p.function_call)
    history.append(types.Content(role="model", parts=parts))
    answer = types.Part.from_function_response(name="get_weather", response={"output": "sunny"})
    if with_id:
        assert call.id == "fc-given-1" and answer.function_response is not None
        answer.function_response.id = call.id
    history.append(types.Content(role="user", parts=[answer]))
    fake.push(Reply(text="Sunny."))
    await gem.aio.models.generate_content(model="gemini-2.5-flash", contents=history, config=config)
    await tw.flush(expect=2)
    rows = tw.rows(
        "SELECT upstream, api, endpoint, stream, model_requested, model_returned, finish_reason, tool_call_count,"
        " tool_result_count, declared_tools, conv_key, parse_status FROM llm_calls ORDER BY ts"
    )
    endpoint = "stream_generate_content" if stream else "generate_content"
    assert [(r["upstream"], r["api"], r["endpoint"]) for r in rows] == [
        ("gemini", "gemini", endpoint),
        ("gemini", "gemini", "generate_content"),
    ]
    assert [r["stream"] for r in rows] == [stream, False]
    assert [(r["model_requested"], r["model_returned"]) for r in rows] == [
        ("gemini-2.5-flash", "gemini-2.5-flash-001"),
        ("gemini-2.5-flash", "gemini-2.5-flash"),
    ]
    assert [r["finish_reason"] for r in rows] == ["STOP", "STOP"]  # STOP with a function call too
    assert [(r["tool_call_count"], r["tool_result_count"]) for r in rows] == [(1, 0), (0, 1)]
    assert rows[0]["declared_tools"] == ["get_weather"] and {r["parse_status"] for r in rows} == {"ok"}
    assert rows[0]["conv_key"] and rows[0]["conv_key"] == rows[1]["conv_key"]
    calls, results = calls_and_results(tw)
    [recorded] = calls
    assert (recorded["name"], json.loads(recorded["raw_arguments"]), recorded["malformed_kind"]) == (
        "get_weather",
        {"city": "Paris"},
        "",
    )
    assert recorded["tool_call_id"] == ("fc-given-1" if with_id else recorded["tool_call_id"])
    assert results == [{"tool_call_id": recorded["tool_call_id"], "content": "sunny", "is_error": None}]


async def test_gemini_key_in_the_query_and_unparsed_endpoints(
    tw: Harness, fake: FakeUpstream, gem: genai.Client
) -> None:
    await gem.aio.models.count_tokens(model="gemini-2.5-flash", contents="count me")
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{tw.url}/gemini/v1beta/models?key=AIza-query-key") as r,
    ):
        assert r.status == 200 and (await r.json())["models"]
    assert fake.received[-1].path == "/v1beta/models?key=AIza-query-key"  # forwarded as sent
    await tw.flush(expect=2)
    rows = tw.rows("SELECT path, endpoint, parse_status, status FROM llm_calls ORDER BY ts")
    assert rows == [
        {
            "path": "/v1beta/models/gemini-2.5-flash:countTokens",
            "endpoint": "other",
            "parse_status": "not_parsed",
            "status": 200,
        },
        {"path": "/v1beta/models", "endpoint": "other", "parse_status": "not_parsed", "status": 200},
    ]


# --- Azure and OpenAI-compatible named upstreams -------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_azure_client_on_an_azure_upstream(tw: Harness, fake: FakeUpstream, stream: bool) -> None:
    fake.push(Reply(tool_calls=(ToolCallSpec("get_weather", '{"city": "Rome"}'),), model="gpt-4o-2024-11-20"))
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=f"{tw.url}/az", api_key="azure-key", api_version="2024-10-21", max_retries=0
    )
    try:
        kwargs: Any = {
            "model": "gpt4o-prod",
            "messages": [{"role": "user", "content": "weather?"}],
            "tools": [CHAT_TOOL],
        }
        if stream:
            async with client.chat.completions.stream(**kwargs) as s:
                final = await s.get_final_completion()
        else:
            final = await client.chat.completions.create(**kwargs)
    finally:
        await client.close()
    assert final.choices[0].message.tool_calls
    got = fake.received[-1]
    assert got.path == "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    assert got.headers["api-key"] == "azure-key"
    await tw.flush(expect=1)
    [row] = tw.rows(
        "SELECT upstream, api, endpoint, path, deployment, model_returned, model, tool_call_count FROM llm_calls"
    )
    assert row == {
        "upstream": "az",
        "api": "azure",
        "endpoint": "chat_completions",
        "path": "/openai/deployments/gpt4o-prod/chat/completions",
        "deployment": "gpt4o-prod",
        "model_returned": "gpt-4o-2024-11-20",
        "model": "gpt-4o-2024-11-20",
        "tool_call_count": 1,
    }


async def test_azure_v1_paths_take_the_deployment_from_the_body(tw: Harness, fake: FakeUpstream) -> None:
    fake.push(Reply(text="ok", model="gpt-4.1-2025-04-14"))
    client = openai.AsyncOpenAI(base_url=f"{tw.url}/az/openai/v1", api_key="azure-key", max_retries=0)
    try:
        await client.responses.create(model="my-gpt41", input="hi")
    finally:
        await client.close()
    await tw.flush(expect=1)
    [row] = tw.rows("SELECT endpoint, deployment, model_requested, model_returned FROM llm_calls")
    assert row == {
        "endpoint": "responses",
        "deployment": "my-gpt41",
        "model_requested": "my-gpt41",
        "model_returned": "gpt-4.1-2025-04-14",
    }


async def test_openai_compatible_upstream_with_a_path_prefix_and_an_in_text_call(
    tw: Harness, fake: FakeUpstream
) -> None:
    text = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    fake.push(Reply(text=text, model="glm-4.5"))
    client = openai.AsyncOpenAI(base_url=f"{tw.url}/glm", api_key="glm-key", max_retries=0)
    try:
        reply = await client.chat.completions.create(
            model="glm-4.5-air", messages=[{"role": "user", "content": "weather?"}], tools=[CHAT_TOOL]
        )
    finally:
        await client.close()
    assert reply.choices[0].message.content == text
    assert fake.received[-1].path == "/api/paas/v4/chat/completions"
    await tw.flush(expect=1)
    [row] = tw.rows(
        "SELECT upstream, api, endpoint, path, model_requested, model_returned, tool_call_count FROM llm_calls"
    )
    assert row == {
        "upstream": "glm",
        "api": "openai",
        "endpoint": "chat_completions",
        "path": "/chat/completions",
        "model_requested": "glm-4.5-air",  # a route alias is visible next to what answered
        "model_returned": "glm-4.5",
        "tool_call_count": 1,  # the call written into the text counts
    }
    [call] = tw.rows(
        "SELECT tool_call_id, name, raw_arguments, arguments, malformed_kind, malformed_detail FROM tool_calls"
    )
    assert call["tool_call_id"].startswith("intext-") and call["name"] == "get_weather"
    assert (call["raw_arguments"], call["malformed_kind"]) == ('{"city":"Paris"}', "in_text")
    assert "tool_call_tag" in call["malformed_detail"]
