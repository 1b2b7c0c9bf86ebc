"""The fake upstream speaks wire formats the official SDKs parse without complaint."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import anthropic
import httpx2
import openai
import pytest
from anthropic.types import InputJSONDelta, MessageParam, RawContentBlockDeltaEvent, RawMessageDeltaEvent
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes.upstreams import FakeUpstream, Reply, ToolCallSpec, Usage, by_turn

WEATHER = ToolCallSpec("get_weather", '{"city": "Zürich", "unit": "celsius", "days": [1, 2]}')
SEARCH = ToolCallSpec("search", '{"q": "naïve café ☕"}', id="call_given")
BROKEN = ToolCallSpec("get_weather", '{"city": "Zür')  # cut off mid-string, on purpose
OAI_USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
USER: list[MessageParam] = [{"role": "user", "content": "hi"}]


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
async def claude(fake: FakeUpstream) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(base_url=fake.url, api_key="x", max_retries=0)
    yield client
    await client.close()


# OpenAI Chat Completions


async def test_openai_text_reply_headers_and_capture(fake: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    fake.push(Reply(text="Grüß dich", usage=Usage(input_tokens=11, output_tokens=3, cache_read_tokens=5)))
    raw = await oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=OAI_USER,
        extra_query={"trace": "1"},
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Grüß dich"
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o-mini"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (16, 3)
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 5
    assert raw.headers["content-type"] == "application/json"
    assert raw.headers["x-request-id"].startswith("req_")
    assert int(raw.headers["openai-processing-ms"]) > 0
    assert raw.headers["x-ratelimit-remaining-requests"] == "9999"
    [received] = fake.received
    assert (received.method, received.path) == ("POST", "/v1/chat/completions?trace=1")
    assert received.headers["authorization"] == "Bearer sk-test"
    assert received.json["messages"] == OAI_USER
    assert not received.stream


async def test_openai_one_tool_call(fake: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    fake.push(Reply(tool_calls=(WEATHER,), model="gpt-4o-2024-08-06"))
    completion = await oai.chat.completions.create(model="gpt-4o", messages=OAI_USER)
    message = completion.choices[0].message
    assert message.content is None
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.model == "gpt-4o-2024-08-06"
    [call] = message.tool_calls or []
    assert call.type == "function"
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1",
        WEATHER.name,
        WEATHER.arguments,
    )


async def test_openai_parallel_tool_calls_with_text(fake: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    fake.push(Reply(text="Checking.", tool_calls=(WEATHER, SEARCH, BROKEN)))
    completion = await oai.chat.completions.create(model="m", messages=OAI_USER)
    message = completion.choices[0].message
    assert message.content == "Checking."
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or [] if c.type == "function"]
    assert calls == [
        ("call_1", WEATHER.name, WEATHER.arguments),
        ("call_given", SEARCH.name, SEARCH.arguments),
        ("call_2", BROKEN.name, BROKEN.arguments),
    ]


@pytest.mark.parametrize("chunk_size", [None, 7, 1])
async def test_openai_stream_helper_reassembles_arguments(
    fake: FakeUpstream, oai: openai.AsyncOpenAI, chunk_size: int | None
) -> None:
    fake.push(Reply(text="Sure — ", tool_calls=(WEATHER, SEARCH, BROKEN), chunk_size=chunk_size))
    async with oai.chat.completions.stream(
        model="m",
        messages=OAI_USER,
        stream_options={"include_usage": True},
    ) as stream:
        done = [e async for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = await stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Sure — "
    assert final.choices[0].finish_reason == "tool_calls"
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []]
    assert calls == [
        ("call_1", WEATHER.name, WEATHER.arguments),
        ("call_given", SEARCH.name, SEARCH.arguments),
        ("call_2", BROKEN.name, BROKEN.arguments),
    ]
    assert [(e.index, e.arguments) for e in done] == [
        (0, WEATHER.arguments),
        (1, SEARCH.arguments),
        (2, BROKEN.arguments),
    ]
    assert final.usage is not None and final.usage.completion_tokens > 0


async def test_openai_raw_deltas_look_like_the_real_api(fake: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    fake.push(Reply(tool_calls=(WEATHER, SEARCH), chunk_size=7))
    stream = await oai.chat.completions.create(model="m", messages=OAI_USER, stream=True)
    chunks = [c async for c in stream]
    assert all(c.object == "chat.completion.chunk" and c.usage is None for c in chunks)
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.content is None
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    heads = [d for d in deltas if d.id is not None]
    assert [(d.index, d.id, d.type, d.function and d.function.name) for d in heads] == [
        (0, "call_1", "function", WEATHER.name),
        (1, "call_given", "function", SEARCH.name),
    ]
    assert all(d.type is None and d.function and d.function.name is None for d in deltas if d.id is None)
    for index, spec in enumerate((WEATHER, SEARCH)):
        fragments = [d.function.arguments or "" for d in deltas if d.index == index and d.function]
        assert len(fragments) > 3
        assert "".join(fragments) == spec.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_openai_usage_chunk_only_when_asked(fake: FakeUpstream) -> None:
    fake.push(Reply(text="a"), Reply(text="a"))
    async with aiohttp.ClientSession() as session:
        plain = await _raw(session, fake.url + "/v1/chat/completions", {"stream": True})
        usage = await _raw(
            session,
            fake.url + "/v1/chat/completions",
            {"stream": True, "stream_options": {"include_usage": True}},
        )
    assert plain.endswith(b"data: [DONE]\n\n") and usage.endswith(b"data: [DONE]\n\n")
    plain_events = [json.loads(line[6:]) for line in plain.split(b"\n\n") if line.startswith(b"data: {")]
    usage_events = [json.loads(line[6:]) for line in usage.split(b"\n\n") if line.startswith(b"data: {")]
    assert all("usage" not in e for e in plain_events)
    assert all(e["usage"] is None for e in usage_events[:-1])
    assert usage_events[-1]["choices"] == [] and usage_events[-1]["usage"]["total_tokens"] > 0


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (400, openai.BadRequestError, "context_length_exceeded"),
        (429, openai.RateLimitError, None),
        (503, openai.InternalServerError, None),
    ],
)
async def test_openai_errors(
    fake: FakeUpstream,
    oai: openai.AsyncOpenAI,
    status: int,
    error: type[openai.APIStatusError],
    code: str | None,
) -> None:
    fake.push(Reply(status=status, error_message="nope, not today", error_code=code))
    with pytest.raises(error) as caught:
        await oai.chat.completions.create(model="m", messages=OAI_USER, stream=True)
    assert caught.value.status_code == status
    assert "nope, not today" in caught.value.message
    assert caught.value.code == (code or ("rate_limit_exceeded" if status == 429 else None))
    assert caught.value.response.headers["x-request-id"].startswith("req_")


async def test_models_list_for_both_sdks(
    fake: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    assert [m.id async for m in oai.models.list()] == ["gpt-4o-mini", "gpt-4o"]
    assert [m.id async for m in claude.models.list()] == ["claude-sonnet-4-5"]
    count = await claude.messages.count_tokens(model="c", messages=USER)
    assert count.input_tokens > 0
    async with (
        aiohttp.ClientSession() as session,
        session.put(fake.url + "/anything/else?x=1", data=b"abc") as r,
    ):
        assert await r.json() == {"method": "PUT", "path": "/anything/else?x=1", "body_length": 3}
    assert [r.path for r in fake.received][-1] == "/anything/else?x=1"


# Anthropic Messages


async def test_anthropic_text_reply(fake: FakeUpstream, claude: anthropic.AsyncAnthropic) -> None:
    fake.push(Reply(text="Grüß dich", usage=Usage(input_tokens=9, output_tokens=2, cache_read_tokens=4)))
    raw = await claude.messages.with_raw_response.create(model="claude-x", max_tokens=5, messages=USER)
    message = await raw.parse()
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].type == "text" and message.content[0].text == "Grüß dich"
    assert (message.stop_reason, message.model, message.role) == ("end_turn", "claude-x", "assistant")
    assert (
        message.usage.input_tokens,
        message.usage.output_tokens,
        message.usage.cache_read_input_tokens,
    ) == (9, 2, 4)
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "3999"
    [received] = fake.received
    assert received.path == "/v1/messages"
    assert "anthropic-version" in received.headers


async def test_anthropic_parallel_tool_use(fake: FakeUpstream, claude: anthropic.AsyncAnthropic) -> None:
    fake.push(Reply(text="Let me check.", tool_calls=(WEATHER, SEARCH)))
    message = await claude.messages.create(model="c", max_tokens=5, messages=USER)
    assert message.stop_reason == "tool_use"
    blocks = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    assert blocks == [
        ("toolu_1", WEATHER.name, json.loads(WEATHER.arguments)),
        ("call_given", SEARCH.name, json.loads(SEARCH.arguments)),
    ]


async def test_anthropic_invalid_arguments_not_streamed_is_a_clear_500(
    fake: FakeUpstream, claude: anthropic.AsyncAnthropic
) -> None:
    fake.push(Reply(tool_calls=(BROKEN,)))
    with pytest.raises(anthropic.InternalServerError, match="not valid JSON"):
        await claude.messages.create(model="c", max_tokens=5, messages=USER)


@pytest.mark.parametrize("chunk_size", [None, 7, 1])
async def test_anthropic_stream_helper_reassembles_input(
    fake: FakeUpstream, claude: anthropic.AsyncAnthropic, chunk_size: int | None
) -> None:
    fake.push(Reply(text="Sure — ", tool_calls=(WEATHER, SEARCH), chunk_size=chunk_size))
    async with claude.messages.stream(model="c", max_tokens=5, messages=USER) as stream:
        partial = [e.partial_json async for e in stream if e.type == "input_json"]
        final = await stream.get_final_message()
    assert "".join(partial) == WEATHER.arguments + SEARCH.arguments
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "text" and final.content[0].text == "Sure — "
    blocks = [(b.id, b.name, b.input) for b in final.content if b.type == "tool_use"]
    assert blocks == [
        ("toolu_1", WEATHER.name, json.loads(WEATHER.arguments)),
        ("call_given", SEARCH.name, json.loads(SEARCH.arguments)),
    ]
    assert final.usage.output_tokens > 1


async def test_anthropic_raw_events_keep_broken_arguments(fake: FakeUpstream, claude: anthropic.AsyncAnthropic) -> None:
    fake.push(Reply(tool_calls=(BROKEN,), chunk_size=7, finish_reason="max_tokens"))
    stream = await claude.messages.create(model="c", max_tokens=5, messages=USER, stream=True)
    events = [e async for e in stream]
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    assert types[1] == "content_block_start"
    partial = [
        e.delta.partial_json
        for e in events
        if isinstance(e, RawContentBlockDeltaEvent) and isinstance(e.delta, InputJSONDelta)
    ]
    assert partial[0] == "" and len(partial) > 3
    assert "".join(partial) == BROKEN.arguments
    [delta] = [e for e in events if isinstance(e, RawMessageDeltaEvent)]
    assert delta.delta.stop_reason == "max_tokens"


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (401, anthropic.AuthenticationError, "authentication_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
async def test_anthropic_errors(
    fake: FakeUpstream,
    claude: anthropic.AsyncAnthropic,
    status: int,
    error: type[anthropic.APIStatusError],
    kind: str,
) -> None:
    fake.push(Reply(status=status, error_message="nope, not today"))
    with pytest.raises(error) as caught:
        await claude.messages.create(model="c", max_tokens=5, messages=USER)
    assert caught.value.status_code == status
    assert "nope, not today" in caught.value.message
    assert caught.value.body == {
        "type": "error",
        "error": {"type": kind, "message": "nope, not today"},
        "request_id": caught.value.response.headers["request-id"],
    }


# Scripting and faults


async def test_by_turn_drives_an_agent_loop_on_both_apis(
    fake: FakeUpstream, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    script = by_turn(Reply(tool_calls=(WEATHER,)), Reply(text="It is sunny."))
    fake.script(script)
    first = await oai.chat.completions.create(model="m", messages=OAI_USER)
    call = (first.choices[0].message.tool_calls or [])[0]
    assert call.type == "function"
    second = await oai.chat.completions.create(
        model="m",
        messages=[
            *OAI_USER,
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.function.name, "arguments": call.function.arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    assert second.choices[0].message.content == "It is sunny."
    assert [(r.call_id, r.content) for r in fake.received[-1].tool_results()] == [(call.id, "sunny")]

    turn1 = await claude.messages.create(model="c", max_tokens=5, messages=USER)
    use = turn1.content[0]
    assert use.type == "tool_use"
    turn2 = await claude.messages.create(
        model="c",
        max_tokens=5,
        messages=[
            *USER,
            {"role": "assistant", "content": turn1.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
        ],
    )
    assert turn2.content[0].type == "text" and turn2.content[0].text == "It is sunny."
    assert [(r.call_id, r.content) for r in fake.received[-1].tool_results()] == [(use.id, "sunny")]


async def test_queue_then_default(fake: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    fake.push(Reply(text="one"))
    texts = [
        (await oai.chat.completions.create(model="m", messages=OAI_USER)).choices[0].message.content for _ in range(2)
    ]
    assert texts == ["one", fake.default.text]


async def test_hang_times_out_and_close_releases_it(fake: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    fake.push(Reply(hang=True))
    with pytest.raises(openai.APITimeoutError):
        await oai.chat.completions.create(model="m", messages=OAI_USER, timeout=0.3)
    started = time.monotonic()
    await fake.close()
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("after", [0, 600])
async def test_hang_after_bytes_stalls_mid_stream(
    fake: FakeUpstream, claude: anthropic.AsyncAnthropic, after: int
) -> None:
    fake.push(Reply(text="a long enough answer", hang_after_bytes=after))
    # The headers arrive even when no body byte does, so `create` returns a stream.
    stream = await claude.messages.create(model="c", max_tokens=5, messages=USER, stream=True, timeout=0.3)
    seen: list[str] = []
    # Unlike openai's, anthropic's AsyncStream lets the transport's ReadTimeout escape unwrapped mid-stream.
    with pytest.raises((anthropic.APITimeoutError, httpx2.ReadTimeout)):
        async for event in stream:
            seen.append(event.type)
    assert seen[:1] == ([] if after == 0 else ["message_start"])
    assert "message_stop" not in seen


@pytest.mark.parametrize("stream", [True, False])
async def test_drop_after_bytes_is_a_connection_error(
    fake: FakeUpstream, oai: openai.AsyncOpenAI, stream: bool
) -> None:
    fake.push(Reply(text="a long enough answer", drop_after_bytes=300))
    with pytest.raises(openai.APIConnectionError):
        if not stream:
            await oai.chat.completions.create(model="m", messages=OAI_USER)
        async for _ in await oai.chat.completions.create(model="m", messages=OAI_USER, stream=True):
            pass


@pytest.mark.parametrize("chunk_size", [None, 3])
async def test_chunk_size_sets_the_http_chunks_and_garbage_lands_before_the_end(
    fake: FakeUpstream, chunk_size: int | None
) -> None:
    fake.push(Reply(text="Grüß", chunk_size=chunk_size, garbage=b": junk \xff\n\n"))
    head, chunks = await _chunked_exchange(fake.port, "/v1/messages", b'{"stream": true}')
    assert b"\r\ncontent-type: text/event-stream; charset=utf-8\r\n" in head.lower()
    body = b"".join(chunks)
    if chunk_size is None:
        assert all(c.endswith(b"\n\n") for c in chunks)  # one write per SSE event
    else:
        assert {len(c) for c in chunks[:-1]} == {chunk_size}
    assert body.endswith(b': junk \xff\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert b'event: ping\ndata: {"type": "ping"}\n\n' in body


async def _chunked_exchange(port: int, path: str, body: bytes) -> tuple[bytes, list[bytes]]:
    """POST over a bare socket and return the response head and its HTTP/1.1 chunks, framing intact."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    writer.write(request.encode() + body)
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    chunks: list[bytes] = []
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        chunks.append(rest[:size])
        rest = rest[size + 2 :]
    return head, chunks


async def _raw(session: aiohttp.ClientSession, url: str, body: dict[str, object]) -> bytes:
    async with session.post(url, json=body) as response:
        return await response.read()


async def test_concurrent_requests_get_unique_ids(fake: FakeUpstream, oai: openai.AsyncOpenAI) -> None:
    fake.default = Reply(tool_calls=(WEATHER,))
    results = await asyncio.gather(*(oai.chat.completions.create(model="m", messages=OAI_USER) for _ in range(5)))
    ids = {(r.choices[0].message.tool_calls or [])[0].id for r in results}
    assert ids == {f"call_{n}" for n in range(1, 6)}
