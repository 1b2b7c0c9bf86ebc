"""OpenAI Responses API parsers: what each wire sample in tests/fixtures/openai_responses/ contains (their
README says what each one is; the values below are read off the samples by hand), and the edge cases of
this API. What every endpoint promises (any split, mutated input, the official SDK reading the samples
alike) is checked in ``test_endpoints``; how the ``openai`` SDK reads the error and cut samples is here."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from toolwatch.providers.base import ParsedResponse, ToolCallOut, ToolResultIn, Usage
from toolwatch.providers.openai_responses import (
    ResponsesParser,
    ResponsesStreamParser,
    parse_request,
    parse_usage,
)

from .helpers import events_of, fixture, replay
from .sdks import openai_client

WEATHER = ToolCallOut(0, "call_Vb8nM3kJ6hG1fD4sA9pO2iU7", "get_weather", '{"location":"Boston, MA","unit":"c"}')
TIME = ToolCallOut(1, "call_Qm3Zt0m7hEw8rVbq5KcL2xYd", "get_time", '{"timezone":"America/New_York"}')


def data(name: str) -> bytes:
    return fixture("openai_responses", name)


def parse_stream(raw: bytes) -> tuple[list[ToolCallOut], ParsedResponse]:
    return replay(ResponsesStreamParser, [raw])


def parse_body(raw: bytes) -> ParsedResponse:
    return replay(ResponsesParser, [raw])[1]


# --- bodies --------------------------------------------------------------------------------------


def test_body_text() -> None:
    result = parse_body(data("text.json"))
    assert (result.model, result.response_id) == ("gpt-4.1-2025-04-14", "resp_68c8a7f0b5d88193a7e1c3f2d4b6a8e0")
    assert result.text == "Paris is the capital of France." and result.tool_calls == ()
    assert result.finish_reason == "completed"
    assert result.usage == Usage(input_uncached=36, cache_read=0, cache_write=None, output=9)
    assert (result.complete, result.errors, result.skipped) == (True, (), 0)


def test_body_parallel_function_calls_and_a_reasoning_item() -> None:
    result = parse_body(data("tool_calls.json"))
    assert result.tool_calls == (
        ToolCallOut(0, "call_Kq2T8vW4yZ1nB6mX3cR7sD0f", "get_weather", '{"location":"Boston, MA","unit":"c"}'),
        ToolCallOut(1, "call_Lp9U3xE6rT2wQ8zY5vN1mA4s", "get_time", '{"timezone":"America/New_York"}'),
    )
    assert result.skipped == 1  # the reasoning item: counted, not required
    assert result.usage == Usage(input_uncached=214 - 128, cache_read=128, cache_write=None, output=188)
    assert result.text == "" and result.model == "o4-mini-2025-04-16"


def test_body_incomplete_takes_the_reason_as_finish_reason() -> None:
    result = parse_body(data("incomplete.json"))
    assert result.finish_reason == "max_output_tokens"
    assert result.tool_calls[0].raw_arguments == '{"location":"Par'


def test_body_error() -> None:
    result = parse_body(data("error_invalid_request.json"))
    assert result.error_type == "invalid_request_error"
    assert result.error_message is not None and result.error_message.startswith("Invalid type for 'input[2].output'")
    assert result.finish_reason is None and result.complete


def test_failed_response_object_keeps_its_error() -> None:
    body = {
        "id": "resp_1",
        "object": "response",
        "status": "failed",
        "output": [],
        "error": {"code": "server_error", "message": "boom"},
    }
    result = parse_body(json.dumps(body).encode())
    assert (result.finish_reason, result.error_type, result.error_message) == ("failed", "server_error", "boom")


def test_custom_tool_calls_and_unknown_items() -> None:
    body = {
        "id": "resp_2",
        "status": "completed",
        "output": [
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            {"type": "custom_tool_call", "call_id": "call_c", "name": "apply_patch", "input": "*** Begin Patch"},
            {"type": "brand_new_item", "x": 1},
            {"type": "function_call", "call_id": "call_f", "arguments": "{}"},
        ],
    }
    result = parse_body(json.dumps(body).encode())
    assert result.tool_calls == (
        ToolCallOut(0, "call_c", "apply_patch", "*** Begin Patch"),
        ToolCallOut(1, "call_f", "", "{}"),
    )
    assert result.skipped == 2 and result.errors == ("tool call 1 has no name",)


def test_usage_with_cache_writes() -> None:
    usage = {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 30},
        "output_tokens": 5,
    }
    assert parse_usage(usage) == Usage(input_uncached=10, cache_read=60, cache_write=30, output=5)
    assert parse_usage({"output_tokens": 3}) == Usage(None, None, None, 3)
    assert parse_usage("x") is None


# --- streams -------------------------------------------------------------------------------------


def test_stream_text() -> None:
    reported, result = parse_stream(data("stream_text.sse"))
    assert reported == []
    assert result.text == "Here are three primary colors: red, yellow, and blue."
    assert result.finish_reason == "completed" and result.usage == Usage(17, 0, None, 13)
    assert (result.complete, result.errors, result.skipped) == (True, (), 0)


def test_stream_tool_calls_reported_at_their_item_done() -> None:
    parser = ResponsesStreamParser()
    when: list[tuple[str, bytes]] = []
    for piece in events_of(data("stream_tool_calls.sse")):
        when += [(call.name, piece) for call in parser.feed(piece)]
    assert [name for name, _ in when] == ["get_weather", "get_time"]
    assert all(piece.startswith(b"event: response.output_item.done") for _, piece in when)
    result = parser.finish()
    assert result.tool_calls == (WEATHER, TIME)
    assert result.skipped == 1  # the reasoning item
    assert result.usage == Usage(input_uncached=301 - 256, cache_read=256, cache_write=None, output=212)
    assert (result.model, result.complete, result.errors) == ("o4-mini-2025-04-16", True, ())


def test_stream_multibyte() -> None:
    _, result = parse_stream(data("stream_multibyte.sse"))
    assert result.text == "東京の天気を調べます 🌤️…"
    assert result.tool_calls == (
        ToolCallOut(0, "call_Wx5Yz8Ab1Cd4Ef7Gh0Ij3Kl6", "get_weather", '{"location":"東京","unit":"c"}'),
    )
    assert result.usage == Usage(1411 - 1280, 1280, None, 40)


def test_stream_failed() -> None:
    _, result = parse_stream(data("stream_failed.sse"))
    assert result.text == "Let me think"
    assert (result.error_type, result.finish_reason, result.complete) == ("server_error", "failed", True)


def test_stream_broken_off_keeps_the_arguments_that_arrived() -> None:
    reported, result = parse_stream(data("stream_broken_off.sse"))
    assert reported == []
    assert result.tool_calls == (
        ToolCallOut(0, "call_Zx1cV4bN7mQ0wE3rT6yU9iO2", "write_file", '{"path":"notes.md","content":"# Meeting'),
    )
    assert not result.complete and result.finish_reason is None
    assert len(result.errors) == 4  # cut JSON, no blank line, no output_item.done, no terminal event


# --- streams: edge cases not in the samples ------------------------------------------------------


def event(kind: str, **fields: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()


CALL_ITEM = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": ""}


def test_done_arguments_are_used_when_no_delta_arrived() -> None:
    raw = (
        event("response.output_item.added", output_index=0, item=CALL_ITEM)
        + event("response.function_call_arguments.done", output_index=0, item_id="fc_1", arguments='{"a":1}')
        + event("response.output_item.done", output_index=0, item={**CALL_ITEM, "arguments": '{"a":1}'})
        + event("response.completed", response={"id": "r", "status": "completed"})
    )
    reported, result = parse_stream(raw)
    assert reported == [ToolCallOut(0, "call_1", "f", '{"a":1}')] and result.errors == ()


def test_deltas_that_differ_from_the_done_item_are_kept_and_noted() -> None:
    raw = (
        event("response.output_item.added", output_index=0, item=CALL_ITEM)
        + event("response.function_call_arguments.delta", output_index=0, item_id="fc_1", delta='{"a":')
        + event("response.output_item.done", output_index=0, item={**CALL_ITEM, "arguments": '{"a":2}'})
    )
    _, result = parse_stream(raw)
    assert result.tool_calls[0].raw_arguments == '{"a":'
    assert "tool call 0: argument deltas differ from the done item" in result.errors


def test_a_terminal_event_alone_gives_its_output() -> None:
    response = json.loads(data("tool_calls.json"))
    _, result = parse_stream(event("response.completed", response=response))
    assert result.tool_calls == parse_body(data("tool_calls.json")).tool_calls and result.complete


def test_unknown_events_are_counted_and_events_after_the_end_skipped() -> None:
    raw = (
        event("response.created", response={"id": "r", "model": "m"})
        + event("response.brand_new.delta", output_index=0, delta="x")
        + event("response.completed", response={"id": "r", "status": "completed"})
        + event("response.output_item.added", output_index=0, item=CALL_ITEM)
    )
    _, result = parse_stream(raw)
    assert (result.skipped, result.tool_calls, result.model) == (2, (), "m")


def test_error_event() -> None:
    _, result = parse_stream(event("error", code="rate_limit_exceeded", message="slow down"))
    assert (result.error_type, result.error_message, result.complete) == ("rate_limit_exceeded", "slow down", False)


# --- requests ------------------------------------------------------------------------------------


def test_request_with_the_whole_input_resent() -> None:
    req = parse_request(data("request_full_input.json"))
    assert (req.model, req.stream, req.message_count, req.error) == ("gpt-4.1", True, 8, None)
    assert [t.name for t in req.tools] == ["get_weather", "get_time", "web_search_preview"]
    assert req.tools[2].schema_json is None
    assert json.loads(req.tools[1].schema_json or "")["required"] == ["timezone"]
    assert req.tool_results == (
        ToolResultIn("call_Kq2T8vW4yZ1nB6mX3cR7sD0f", '{"temp_c": 18, "sky": "clear"}'),
        ToolResultIn("call_Lp9U3xE6rT2wQ8zY5vN1mA4s", "2025-09-15T14:31:00-04:00"),
    )
    ids = ("call_Kq2T8vW4yZ1nB6mX3cR7sD0f", "call_Lp9U3xE6rT2wQ8zY5vN1mA4s")
    assert req.prior_tool_call_ids == ids
    assert req.system_text == "You are a travel assistant. Use the tools."
    assert req.first_user_text == "Weather in Boston\nand the time in New York?"
    assert (req.first_reply_text, req.first_reply_tool_ids) == ("", ids)  # the reasoning item is skipped
    assert req.previous_response_id is None


def test_request_continuing_from_a_previous_response() -> None:
    req = parse_request(data("request_previous_response.json"))
    assert req.previous_response_id == "resp_68c8a8121a4c8190b3d5f7a9c1e3a5c7"
    assert [r.tool_call_id for r in req.tool_results] == [
        "call_Kq2T8vW4yZ1nB6mX3cR7sD0f",
        "call_Lp9U3xE6rT2wQ8zY5vN1mA4s",
    ]
    # the opening lives upstream: the request does not carry it
    assert (req.system_text, req.first_user_text, req.first_reply_text) == ("", "", None)
    assert (req.prior_tool_call_ids, req.stream) == ((), False)


def test_string_input_and_leading_system_messages() -> None:
    req = parse_request(b'{"model": "m", "input": "hello"}')
    assert (req.first_user_text, req.message_count, req.system_text) == ("hello", 1, "")
    body = {
        "model": "m",
        "instructions": "A.",
        "input": [
            {"role": "developer", "content": "B."},
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"role": "system", "content": "a reminder later on"},
        ],
    }
    req = parse_request(json.dumps(body).encode())
    assert (req.system_text, req.first_user_text) == ("A.\nB.", "hi")


@pytest.mark.parametrize(
    "body",
    [
        b'{"input": 5}',
        b'{"tools": [{"type": "function"}], "input": [{"type": "function_call_output"}]}',
    ],
)
def test_request_garbage_sets_error(body: bytes) -> None:
    assert parse_request(body).error


# --- how the official SDK reads the error and cut samples --------------------------------------


def test_sdk_sees_the_failed_stream_too() -> None:
    with openai_client(data("stream_failed.sse"), "text/event-stream") as client:
        kinds = [e.type for e in client.responses.create(model="m", input="hi", stream=True)]
    assert kinds[-2:] == ["error", "response.failed"]
    assert parse_stream(data("stream_failed.sse"))[1].error_type == "server_error"


def test_sdk_reads_the_error_body_alike() -> None:
    raw = data("error_invalid_request.json")
    with openai_client(raw, "application/json", 400) as client, pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="m", input="hi")
    assert caught.value.code == "invalid_type" and caught.value.type == parse_body(raw).error_type


def test_sdk_drops_the_cut_event_of_a_broken_stream_as_we_do() -> None:
    raw = data("stream_broken_off.sse")
    with openai_client(raw, "text/event-stream") as client:
        deltas = [
            e.delta
            for e in client.responses.create(model="m", input="hi", stream=True)
            if e.type.endswith("arguments.delta")
        ]
    assert "".join(deltas) == parse_stream(raw)[1].tool_calls[0].raw_arguments
