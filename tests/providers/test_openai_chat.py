"""OpenAI Chat Completions parsers: what each wire sample in tests/fixtures/openai_chat/ contains (their
README says what each one is; the values below are read off the samples by hand), and the edge cases of
this API. What every endpoint promises (any split, mutated input, the official SDK reading the samples
alike) is checked in ``test_endpoints``; the ``openai`` SDK's failures on the error samples are here."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolwatch.providers.base import ParsedResponse, ToolCallOut, ToolResultIn, Usage
from toolwatch.providers.openai_chat import (
    ChatCompletionParser,
    ChatCompletionStreamParser,
    parse_request,
    parse_usage,
)

from .helpers import events_of, fixture, replay
from .sdks import MESSAGES, openai_client

FUZZ = settings(max_examples=200, deadline=None)
PARALLEL = [
    ToolCallOut(0, "call_nA4kR8sW2eYt6Uq1Ix3Mb5Vp", "get_weather", '{"location": "Boston, MA"}'),
    ToolCallOut(1, "call_gH7jQ2zX9cV4bN6mL1kP0oW8", "get_weather", '{"location": "San Francisco, CA"}'),
    ToolCallOut(2, "call_Yt3uR6eW1qA9sD4fG7hJ2kL5", "get_time", '{"timezone": "America/New_York"}'),
]


def stream(name: str) -> bytes:
    return fixture("openai_chat", name)


def parse_stream(data: bytes) -> tuple[list[ToolCallOut], ParsedResponse]:
    return replay(ChatCompletionStreamParser, [data])


def parse_body(data: bytes) -> ParsedResponse:
    return replay(ChatCompletionParser, [data])[1]


# --- streams: what they contain -----------------------------------------------------------------


def test_stream_text_with_usage() -> None:
    reported, result = parse_stream(stream("stream_text_usage.sse"))
    assert reported == []
    assert result.text == "Here are three primary colors: red, yellow, and blue."
    assert (result.model, result.response_id) == (
        "gpt-4.1-2025-04-14",
        "chatcmpl-CFa7rB2eQk9Vn3WdYt6Hs0Lp1XmZa",
    )
    assert result.finish_reason == "stop"
    assert result.usage == Usage(input_uncached=17, cache_read=0, cache_write=None, output=13)
    assert (result.complete, result.errors, result.skipped) == (True, (), 0)


def test_stream_single_tool_call_without_usage() -> None:
    reported, result = parse_stream(stream("stream_tool_call.sse"))
    call = ToolCallOut(
        0, "call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather", '{"location":"Paris, France","unit":"celsius"}'
    )
    assert reported == [call]
    assert result.tool_calls == (call,)
    assert result.finish_reason == "tool_calls"
    assert result.usage == Usage()  # include_usage was not requested
    assert result.complete and result.errors == ()


def test_stream_parallel_tool_calls() -> None:
    reported, result = parse_stream(stream("stream_parallel_tool_calls.sse"))
    assert reported == PARALLEL
    assert result.tool_calls == tuple(PARALLEL)
    assert result.usage == Usage(118, 0, None, 71)
    assert result.complete and result.text == ""


def test_parallel_calls_are_reported_when_the_next_index_starts() -> None:
    parser = ChatCompletionStreamParser()
    when: dict[int, int] = {}
    for n, piece in enumerate(events_of(stream("stream_parallel_tool_calls.sse"))):
        for call in parser.feed(piece):
            when[call.index] = n
            if call.index < 2:  # the event that reported it opens the next index
                assert f'"index":{call.index + 1},"id":'.encode() in piece
            else:
                assert b'"finish_reason":"tool_calls"' in piece
    assert sorted(when) == [0, 1, 2] and when[0] < when[1] < when[2]


def test_stream_multibyte_text_and_arguments() -> None:
    _, result = parse_stream(stream("stream_multibyte.sse"))
    assert result.text == "東京の天気を調べます 🌤️…"
    assert result.tool_calls == (
        ToolCallOut(0, "call_Vb8nM3kJ6hG1fD4sA9pO2iU7", "get_weather", '{"city":"東京","note":"☔ 傘を持って🌂"}'),
    )
    assert result.usage == Usage(input_uncached=1411 - 1280, cache_read=1280, cache_write=None, output=40)


def test_stream_error_event() -> None:
    _, result = parse_stream(stream("stream_error.sse"))
    assert result.text == "Let me think"
    assert result.error_type == "server_error"
    assert result.error_message == "The server had an error while processing your request. Sorry about that!"
    assert not result.complete
    assert any("[DONE]" in e for e in result.errors)


def test_stream_broken_off_mid_arguments_keeps_what_arrived() -> None:
    reported, result = parse_stream(stream("stream_broken_off.sse"))
    assert reported == []  # never finished
    assert result.tool_calls == (
        ToolCallOut(0, "call_Zx1cV4bN7mQ0wE3rT6yU9iO2", "write_file", '{"path":"notes.md","content":"# Meeting'),
    )
    assert not result.complete and result.finish_reason is None
    assert len(result.errors) == 3  # the cut JSON line, no blank line after it, no [DONE]


# --- streams: events of the wrong shape -----------------------------------------------------------

WRONG_SHAPES = [
    b'{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"c","function":{"name":"f"}}]}}]}',
    b'{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}',
    b'{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":null}}, 3]}}]}',
    b'{"choices":[{"delta":{"content":7},"finish_reason":"stop"}],"usage":{"prompt_tokens":"x"}}',
    b'{"choices":[{"index":"0","delta":[]}, null]}',
    b'{"choices":"no","usage":[]}',
    b'{"error":[1]}',
    b'{"object":"other"}',
    b"[DONE]",
    b"[1, 2]",
    b"",
]


@FUZZ
@given(events=st.lists(st.tuples(st.sampled_from([None, b"weird"]), st.sampled_from(WRONG_SHAPES)), max_size=12))
def test_wrong_shapes_never_raise(events: list[tuple[bytes | None, bytes]]) -> None:
    data = b"".join((b"event: " + name + b"\n" if name else b"") + b"data: " + d + b"\n\n" for name, d in events)
    result = parse_stream(data)[1]
    assert result.complete == ((None, b"[DONE]") in events)


# --- streams: edge cases not in the samples ----------------------------------------------------


def chunk_event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
    body = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "model": "m", "choices": choices, **extra}
    return f"data: {json.dumps(body)}\n\n".encode()


def delta(d: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {"index": index, "delta": d, "finish_reason": finish}


def test_events_after_done_are_skipped() -> None:
    data = chunk_event([delta({"content": "a"})]) + b"data: [DONE]\n\n" + chunk_event([delta({"content": "b"})])
    result = parse_stream(data)[1]
    assert (result.text, result.complete, result.skipped) == ("a", True, 1)


def test_choices_other_than_zero_are_ignored_and_noted() -> None:
    data = chunk_event([delta({"content": "a"}), delta({"content": "b"}, index=1)]) + b"data: [DONE]\n\n"
    result = parse_stream(data)[1]
    assert result.text == "a" and result.errors == ("choices other than index 0 ignored",)


def test_missing_index_falls_back_to_ids() -> None:
    def tc(d: dict[str, Any]) -> bytes:
        return chunk_event([delta({"tool_calls": [d]})])

    data = (
        tc({"id": "a", "function": {"name": "f", "arguments": "{"}})
        + tc({"function": {"arguments": "}"}})
        + tc({"id": "b", "function": {"name": "g", "arguments": "[]"}})
        + chunk_event([delta({}, "tool_calls")])
        + b"data: [DONE]\n\n"
    )
    assert parse_stream(data)[1].tool_calls == (
        ToolCallOut(0, "a", "f", "{}"),
        ToolCallOut(1, "b", "g", "[]"),
    )


def test_delta_for_a_reported_call_is_kept_and_noted() -> None:
    def tc(index: int, args: str, **first: str) -> bytes:
        fn = {"arguments": args, **({"name": first["name"]} if first else {})}
        return chunk_event(
            [delta({"tool_calls": [{"index": index, **({"id": first["id"]} if first else {}), "function": fn}]})]
        )

    data = tc(0, '{"a":', id="x", name="f") + tc(1, "{}", id="y", name="g") + tc(0, "1}") + b"data: [DONE]\n\n"
    reported, result = parse_stream(data)
    assert reported[0] == ToolCallOut(0, "x", "f", '{"a":')  # reported when index 1 started
    assert result.tool_calls[0] == ToolCallOut(0, "x", "f", '{"a":1}')
    assert result.errors == ("tool call 0 received a delta after it was reported complete",)


def test_custom_and_legacy_function_call_deltas() -> None:
    custom = {"index": 0, "id": "c1", "type": "custom", "custom": {"name": "patch", "input": "*** Begin"}}
    data = chunk_event([delta({"tool_calls": [custom]}, "tool_calls")]) + b"data: [DONE]\n\n"
    assert parse_stream(data)[1].tool_calls == (ToolCallOut(0, "c1", "patch", "*** Begin"),)
    legacy = chunk_event([delta({"function_call": {"name": "f", "arguments": '{"x"'}})])
    legacy += chunk_event([delta({"function_call": {"arguments": ":1}"}}, "function_call")])
    assert parse_stream(legacy + b"data: [DONE]\n\n")[1].tool_calls == (ToolCallOut(0, "", "f", '{"x":1}'),)


@pytest.mark.timeout(5)
def test_a_stream_of_many_tool_calls_is_read_in_linear_time() -> None:
    # each new index used to sort every call seen so far again: 10,000 calls took half a minute
    calls = ({"index": i, "id": f"c{i}", "function": {"name": "f", "arguments": "{}"}} for i in range(10_000))
    data = b"".join(chunk_event([delta({"tool_calls": [call]})]) for call in calls) + b"data: [DONE]\n\n"
    reported, result = parse_stream(data)
    assert reported == list(result.tool_calls) and len(reported) == 10_000 and result.complete


# --- non-streamed bodies -----------------------------------------------------------------------


def test_body_text() -> None:
    result = parse_body(fixture("openai_chat", "text.json"))
    assert result.text == "The capital of Australia is Canberra."
    assert (result.finish_reason, result.complete, result.tool_calls) == ("stop", True, ())
    assert result.usage == Usage(24, 0, None, 8)


def test_body_tool_call_with_cached_tokens() -> None:
    result = parse_body(fixture("openai_chat", "tool_call.json"))
    assert result.tool_calls == (
        ToolCallOut(0, "call_Qm3Zt0m7hEw8rVbq5KcL2xYd", "get_weather", '{"location":"Paris, France","unit":"celsius"}'),
    )
    assert result.usage == Usage(input_uncached=2006 - 1920, cache_read=1920, cache_write=None, output=23)
    assert result.text == "" and result.finish_reason == "tool_calls"


def test_body_parallel_tool_calls() -> None:
    result = parse_body(fixture("openai_chat", "parallel_tool_calls.json"))
    assert result.tool_calls == (
        ToolCallOut(0, "call_8Jv2nQy4XkP0wR7tLm3sB6dH", "get_weather", '{"location": "Boston, MA"}'),
        ToolCallOut(1, "call_Tz5cW1oE9rUa2fYi6gNx0Vq3", "get_weather", '{"location": "San Francisco, CA"}'),
        ToolCallOut(2, "call_Lk7pD3mB0sZe8hXj4Cw2Gu9R", "get_time", '{"timezone": "America/New_York"}'),
    )


def test_body_error() -> None:
    result = parse_body(fixture("openai_chat", "error_invalid_request.json"))
    assert result.error_type == "invalid_request_error"
    assert result.error_message is not None and result.error_message.startswith("An assistant message with")
    assert result.complete and result.errors == ()


@pytest.mark.parametrize(("body", "complete"), [(b"[1]", False), (b'{"choices": 3}', True)])
def test_body_garbage(body: bytes, complete: bool) -> None:
    result = parse_body(body)
    assert result.complete is complete and result.errors


def test_error_code_stands_in_for_a_missing_type() -> None:
    result = parse_body(b'{"error": {"message": "Rate limit", "type": null, "code": "rate_limit_exceeded"}}')
    assert (result.error_type, result.error_message) == ("rate_limit_exceeded", "Rate limit")


def test_usage_without_details() -> None:
    assert parse_usage({"prompt_tokens": 10, "completion_tokens": 2}) == Usage(10, None, None, 2)
    assert parse_usage(None) is None


# --- requests ----------------------------------------------------------------------------------


def test_request_with_tool_results_over_several_turns() -> None:
    req = parse_request(fixture("openai_chat", "request_tool_results.json"))
    assert (req.model, req.stream, req.message_count, req.error) == ("gpt-4.1", True, 10, None)
    assert [t.name for t in req.tools] == ["get_weather", "get_time", "find_restaurant"]
    schema = req.tools[1].schema_json
    assert schema is not None and " " not in schema.replace("IANA zone name", "")
    assert json.loads(schema)["required"] == ["timezone"]
    assert req.tool_results == (
        ToolResultIn("call_nA4kR8sW2eYt6Uq1Ix3Mb5Vp", '{"temp_c": 18, "sky": "clear"}'),
        ToolResultIn("call_gH7jQ2zX9cV4bN6mL1kP0oW8", '{"temp_c": 14, "sky": "fog"}'),
        ToolResultIn("call_Yt3uR6eW1qA9sD4fG7hJ2kL5", "2025-09-15T14:31:00-04:00"),
        ToolResultIn("call_Qm3Zt0m7hEw8rVbq5KcL2xYd", "[]"),
    )
    assert req.prior_tool_call_ids == (
        "call_nA4kR8sW2eYt6Uq1Ix3Mb5Vp",
        "call_gH7jQ2zX9cV4bN6mL1kP0oW8",
        "call_Yt3uR6eW1qA9sD4fG7hJ2kL5",
        "call_Qm3Zt0m7hEw8rVbq5KcL2xYd",
    )


def test_request_legacy_functions_and_no_schema() -> None:
    body = {
        "model": "gpt-3.5-turbo",
        "messages": [{"role": "user", "content": "hi"}],
        "functions": [{"name": "f", "parameters": {"type": "object"}}, {"name": "g"}],
    }
    req = parse_request(json.dumps(body).encode())
    assert [(t.name, t.schema_json) for t in req.tools] == [("f", '{"type":"object"}'), ("g", None)]
    assert (req.stream, req.message_count, req.error) == (False, 1, None)


def test_request_opening_fields() -> None:
    req = parse_request(fixture("openai_chat", "request_tool_results.json"))
    assert req.system_text == "You are a travel assistant. Use the tools."
    assert req.first_user_text == "What's the weather in Boston and San Francisco, and the time in New York?"
    assert req.first_reply_text == ""  # content: null, tool calls only
    assert req.first_reply_tool_ids == (
        "call_nA4kR8sW2eYt6Uq1Ix3Mb5Vp",
        "call_gH7jQ2zX9cV4bN6mL1kP0oW8",
        "call_Yt3uR6eW1qA9sD4fG7hJ2kL5",
    )
    assert req.previous_response_id is None


def test_opening_uses_leading_system_messages_and_ignores_content_shape() -> None:
    def request(messages: list[dict[str, Any]]) -> bytes:
        return json.dumps({"model": "m", "messages": messages}).encode()

    plain = parse_request(
        request(
            [
                {"role": "system", "content": "Rules."},
                {"role": "developer", "content": "More rules."},
                {"role": "user", "content": "Line one\nLine two"},
                {"role": "system", "content": "A reminder mid-conversation."},
                {"role": "user", "content": "second"},
            ]
        )
    )
    parts = parse_request(
        request(
            [
                {"role": "system", "content": [{"type": "text", "text": "Rules."}]},
                {"role": "developer", "content": "More rules."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Line one"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                        {"type": "text", "text": "Line two"},
                    ],
                },
            ]
        )
    )
    for req in (plain, parts):
        assert (req.system_text, req.first_user_text) == ("Rules.\nMore rules.", "Line one\nLine two")
        assert (req.first_reply_text, req.first_reply_tool_ids) == (None, ())


@pytest.mark.parametrize(
    "body", [b'{"messages": 5}', b'{"tools": [1, {"type": "function"}], "messages": [3, {"role": "tool"}]}']
)
def test_request_garbage_sets_error(body: bytes) -> None:
    assert parse_request(body).error


# --- the official SDK fails on the error samples, and agrees on what they say --------------------


def test_sdk_raises_on_the_stream_error() -> None:
    with openai_client(stream("stream_error.sse"), "text/event-stream") as client:
        texts: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            for chunk in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
                texts.append(chunk.choices[0].delta.content or "")
    ours = parse_stream(stream("stream_error.sse"))[1]
    assert caught.value.message == ours.error_message
    assert "".join(texts) == ours.text


def test_sdk_reads_the_error_body_alike() -> None:
    data = fixture("openai_chat", "error_invalid_request.json")
    with openai_client(data, "application/json", 400) as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)
    ours = parse_body(data)
    assert caught.value.type == ours.error_type
    assert isinstance(caught.value.body, dict) and caught.value.body["message"] == ours.error_message
