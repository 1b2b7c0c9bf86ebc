"""Anthropic Messages parsers: what each wire sample in tests/fixtures/anthropic_messages/ contains (their
README says what each one is; the values below are read off the samples by hand), and the edge cases of
this API. What every endpoint promises (any split, mutated input, the official SDK reading the samples
alike) is checked in ``test_endpoints``; the ``anthropic`` SDK's failure on the error samples is here."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolwatch.providers.anthropic_messages import (
    MessagesParser,
    MessagesStreamParser,
    parse_request,
    parse_usage,
)
from toolwatch.providers.base import ParsedResponse, ToolCallOut, ToolDecl, ToolResultIn, Usage

from .helpers import events_of, fixture, replay
from .sdks import MESSAGES, anthropic_client

FUZZ = settings(max_examples=200, deadline=None)


def stream(name: str) -> bytes:
    return fixture("anthropic_messages", name)


def parse_stream(data: bytes) -> tuple[list[ToolCallOut], ParsedResponse]:
    return replay(MessagesStreamParser, [data])


def parse_body(data: bytes) -> ParsedResponse:
    return replay(MessagesParser, [data])[1]


# --- streams: what they contain -----------------------------------------------------------------


def test_stream_text() -> None:
    reported, result = parse_stream(stream("stream_text.sse"))
    assert reported == [] and result.tool_calls == ()
    assert result.text == "Here are three primary colors: red, yellow, and blue."
    assert (result.model, result.response_id) == (
        "claude-sonnet-4-5-20250929",
        "msg_01Sx4Bq8Lz9WnD2eVk7GmT3p",
    )
    assert result.finish_reason == "end_turn"
    # input and cache counts from message_start, output from message_delta (15 replaces the start's 1)
    assert result.usage == Usage(input_uncached=25, cache_read=0, cache_write=0, output=15)
    assert (result.complete, result.errors, result.skipped) == (True, (), 0)


def test_stream_tool_use() -> None:
    reported, result = parse_stream(stream("stream_tool_use.sse"))
    call = ToolCallOut(
        0,
        "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "get_weather",
        '{"location": "San Francisco, CA", "unit": "fahrenheit"}',
    )
    assert reported == [call] and result.tool_calls == (call,)
    assert result.text == "Okay, let's check the weather for San Francisco, CA:"
    assert result.usage == Usage(input_uncached=472, cache_read=1024, cache_write=0, output=89)
    assert result.finish_reason == "tool_use" and result.complete


def test_stream_parallel_tool_use_and_a_tool_without_parameters() -> None:
    reported, result = parse_stream(stream("stream_parallel_tool_use.sse"))
    expected = [
        ToolCallOut(0, "toolu_01Gq2XwN8fVb5Jm3Kt7Rp9Ys", "get_weather", '{"location": "Boston, MA"}'),
        ToolCallOut(1, "toolu_01Wz4Hc7Lm1Tn9Qv6Bx3Dj8E", "get_weather", '{"location": "Seattle, WA"}'),
        ToolCallOut(2, "toolu_01Mb6Pk2Sd9Yf4Rx1Nw7Ve3C", "get_current_time", "{}"),  # only "" was streamed
    ]
    assert reported == expected and result.tool_calls == tuple(expected)
    assert result.usage == Usage(input_uncached=1203, cache_read=0, cache_write=2048, output=131)


def test_calls_are_reported_at_their_content_block_stop() -> None:
    parser = MessagesStreamParser()
    seen = 0
    for piece in events_of(stream("stream_parallel_tool_use.sse")):
        for call in parser.feed(piece):
            assert piece.startswith(b"event: content_block_stop")
            assert call.index == seen
            seen += 1
    assert seen == 3


def test_stream_multibyte() -> None:
    _, result = parse_stream(stream("stream_multibyte.sse"))
    assert result.text == "東京の天気を確認します 🌤️…"
    assert result.tool_calls == (
        ToolCallOut(0, "toolu_01Rk5Nw2Qs8Lv3Ht6Jx9Mb4P", "get_weather", '{"city": "東京", "note": "☔ 傘を持って🌂"}'),
    )
    assert result.model == "claude-haiku-4-5-20251001"


def test_stream_overloaded_error() -> None:
    _, result = parse_stream(stream("stream_overloaded_error.sse"))
    assert (result.error_type, result.error_message) == ("overloaded_error", "Overloaded")
    assert result.text == "Let me" and not result.complete
    assert result.errors == ("stream ended before message_stop",)


def test_stream_broken_off_mid_arguments() -> None:
    reported, result = parse_stream(stream("stream_broken_off.sse"))
    assert reported == []
    assert result.tool_calls == (
        ToolCallOut(
            0,
            "toolu_01Tg3Yh6Uj9Ik2Ol5Pz8Xc1V",
            "write_file",
            '{"path": "notes.md", "content": "# Meeting\\n- agenda',
        ),
    )
    assert not result.complete and result.finish_reason is None
    assert any("content_block_stop" in e for e in result.errors)
    assert any("message_stop" in e for e in result.errors)


# --- streams: events of the wrong shape -----------------------------------------------------------

WRONG_SHAPES = [
    b'{"type":"message_start","message":[]}',
    b'{"type":"message_start","message":{"usage":{"input_tokens":"many","output_tokens":true}}}',
    b'{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":5,"input":null}}',
    b'{"type":"content_block_start","index":"0","content_block":7}',
    b'{"type":"content_block_start","index":1,"content_block":{"type":"thinking","thinking":""}}',
    b'{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":3}}',
    b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}',
    b'{"type":"content_block_delta","index":9,"delta":null}',
    b'{"type":"content_block_stop","index":0}',
    b'{"type":"message_delta","delta":"x","usage":{"output_tokens":-1}}',
    b'{"type":"error","error":"boom"}',
    b'{"type":"error"}',
    b'{"type":"message_stop"}',
    b'{"type":"novel_event"}',
    b'"just a string"',
    b"",
]


@FUZZ
@given(events=st.lists(st.sampled_from(WRONG_SHAPES), max_size=14))
def test_wrong_shapes_never_raise(events: list[bytes]) -> None:
    result = parse_stream(b"".join(b"event: x\ndata: " + e + b"\n\n" for e in events))[1]
    assert result.complete == (b'{"type":"message_stop"}' in events)


# --- streams: edge cases not in the samples ----------------------------------------------------


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


START = {"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 5}}}
STOP = {"type": "message_stop"}


def test_thinking_and_server_tool_blocks_are_skipped_once_each() -> None:
    data = sse(
        START,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "x"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "citations_delta", "citation": {}}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "ok"}},
        {"type": "content_block_stop", "index": 2},
        STOP,
    )
    result = parse_stream(data)[1]
    assert (result.text, result.tool_calls, result.skipped, result.errors) == ("ok", (), 3, ())


def test_events_after_message_stop_and_unknown_events_are_skipped() -> None:
    data = sse(START, {"type": "future_event"}, STOP, {"type": "message_delta", "delta": {"stop_reason": "x"}})
    result = parse_stream(data)[1]
    assert (result.skipped, result.finish_reason, result.complete) == (2, None, True)


def test_delta_for_a_block_that_never_started_is_noted() -> None:
    data = sse(START, {"type": "content_block_delta", "index": 3, "delta": {"type": "text_delta", "text": "x"}}, STOP)
    result = parse_stream(data)[1]
    assert result.text == "" and result.errors == ("content_block_delta for content block 3, which never started",)


# --- non-streamed bodies -----------------------------------------------------------------------


def test_body_text() -> None:
    result = parse_body(fixture("anthropic_messages", "text.json"))
    assert result.text == "The capital of Australia is Canberra."
    assert (result.finish_reason, result.complete, result.tool_calls, result.skipped) == ("end_turn", True, (), 0)
    assert result.usage == Usage(21, 0, 0, 11)


def test_body_tool_use_arguments_are_compact_json_of_the_input() -> None:
    result = parse_body(fixture("anthropic_messages", "tool_use.json"))
    assert result.tool_calls == (
        ToolCallOut(0, "toolu_01A09q90qw90lq917835lq9", "get_weather", '{"location":"Paris, France","unit":"celsius"}'),
    )
    assert result.usage == Usage(input_uncached=13, cache_read=2048, cache_write=0, output=71)


def test_body_parallel_tool_use_with_thinking() -> None:
    result = parse_body(fixture("anthropic_messages", "parallel_tool_use.json"))
    assert result.tool_calls == (
        ToolCallOut(0, "toolu_01CnXvq3G6eP9sKm2oWbRt4Y", "get_weather", '{"location":"東京"}'),
        ToolCallOut(1, "toolu_01Lr8fTq1ZyA3bHx7NcM5uWd", "get_weather", '{"location":"Zürich"}'),
        ToolCallOut(
            2,
            "toolu_01Pe6kJs9DwU2gVt4QxB8nRa",
            "get_time",
            '{"timezone":"Asia/Tokyo","format":{"hour12":false}}',
        ),
    )
    assert result.skipped == 1  # the thinking block
    assert result.usage == Usage(input_uncached=654, cache_read=0, cache_write=1536, output=187)


def test_body_error() -> None:
    result = parse_body(fixture("anthropic_messages", "error_invalid_request.json"))
    assert result.error_type == "invalid_request_error"
    assert result.error_message is not None and result.error_message.startswith("messages.2: `tool_use` ids")
    assert result.complete and result.errors == ()


@pytest.mark.parametrize(("body", "complete"), [(b"null", False), (b'{"type": "completion"}', True)])
def test_body_garbage(body: bytes, complete: bool) -> None:
    result = parse_body(body)
    assert result.complete is complete and result.errors


def test_message_delta_usage_overrides_field_by_field() -> None:
    start = Usage(input_uncached=100, cache_read=50, cache_write=0, output=1)
    assert parse_usage({"output_tokens": 30}, start) == Usage(100, 50, 0, 30)
    assert parse_usage({"input_tokens": 90, "cache_read_input_tokens": None}, start) == Usage(90, 50, 0, 1)


# --- requests ----------------------------------------------------------------------------------


def test_request_with_tool_results_is_error_and_cache_control() -> None:
    req = parse_request(fixture("anthropic_messages", "request_tool_results.json"))
    assert (req.model, req.stream, req.message_count, req.error) == ("claude-sonnet-4-5-20250929", True, 5, None)
    assert [t.name for t in req.tools] == ["get_weather", "get_time", "web_search"]
    assert req.tools[2] == ToolDecl("web_search", None)  # a server tool: no input_schema
    schema = req.tools[0].schema_json
    assert schema is not None and json.loads(schema)["properties"]["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert schema.startswith('{"type":"object","properties":{"location":{"type":"string"')
    assert req.tool_results == (
        ToolResultIn("toolu_01CnXvq3G6eP9sKm2oWbRt4Y", "22°C, light rain ☔", None),
        ToolResultIn("toolu_01Lr8fTq1ZyA3bHx7NcM5uWd", "station ZRH-3 offline: timeout after 10s", True),
        ToolResultIn("toolu_01Pe6kJs9DwU2gVt4QxB8nRa", "21:04", False),
        ToolResultIn("toolu_01Xa2Sb5Dc8Fe1Gh4Jk7Lm0N", "", None),
    )
    assert req.prior_tool_call_ids == (
        "toolu_01CnXvq3G6eP9sKm2oWbRt4Y",
        "toolu_01Lr8fTq1ZyA3bHx7NcM5uWd",
        "toolu_01Pe6kJs9DwU2gVt4QxB8nRa",
        "toolu_01Xa2Sb5Dc8Fe1Gh4Jk7Lm0N",
    )


def test_request_with_string_system_and_contents() -> None:
    body = {
        "model": "claude-x",
        "system": "Be brief.",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    req = parse_request(json.dumps(body).encode())
    fields = (req.model, req.stream, req.message_count, req.tools, req.tool_results, req.error)
    assert fields == ("claude-x", False, 1, (), (), None)


def test_request_opening_fields() -> None:
    req = parse_request(fixture("anthropic_messages", "request_tool_results.json"))
    assert req.system_text == "You are a weather assistant. Prefer metric units."
    assert req.first_user_text == "What's the weather in 東京 and Zürich, and the time in Tokyo?"
    assert req.first_reply_text == "I'll look up both cities at once."  # the thinking block is left out
    assert req.first_reply_tool_ids == (
        "toolu_01CnXvq3G6eP9sKm2oWbRt4Y",
        "toolu_01Lr8fTq1ZyA3bHx7NcM5uWd",
        "toolu_01Pe6kJs9DwU2gVt4QxB8nRa",
    )


def test_opening_ignores_cache_markers_and_content_shape() -> None:
    plain = {"system": "Rules.\nMore.", "messages": [{"role": "user", "content": "Hello\nthere"}]}
    blocks = {
        "system": [
            {"type": "text", "text": "Rules."},
            {"type": "text", "text": "More.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Hello"},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                    {"type": "text", "text": "there", "cache_control": {"type": "ephemeral"}},
                ],
            }
        ],
    }
    for body in (plain, blocks):
        req = parse_request(json.dumps({"model": "m", **body}).encode())
        assert (req.system_text, req.first_user_text) == ("Rules.\nMore.", "Hello\nthere")
        assert (req.first_reply_text, req.first_reply_tool_ids) == (None, ())


TWO_TEXT_BLOCKS = sse(
    START,
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Part one."}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": "Part"}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": " two."}},
    {"type": "content_block_stop", "index": 1},
    STOP,
)


def test_text_blocks_join_with_a_newline_streamed_or_not() -> None:
    assert parse_stream(TWO_TEXT_BLOCKS)[1].text == "Part one.\nPart two."
    body = {
        "type": "message",
        "content": [{"type": "text", "text": "Part one."}, {"type": "text", "text": "Part two."}],
    }
    assert parse_body(json.dumps(body).encode()).text == "Part one.\nPart two."
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": body["content"]}]
    assert parse_request(json.dumps({"messages": messages}).encode()).first_reply_text == "Part one.\nPart two."


@pytest.mark.parametrize(
    "body",
    [
        b'{"system": 5, "messages": []}',
        b'{"tools": [{"input_schema": {}}], "messages": []}',
        b'{"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}',
    ],
)
def test_request_garbage_sets_error(body: bytes) -> None:
    assert parse_request(body).error


# --- the official SDK fails on the error samples, and agrees on what they say --------------------


def test_sdk_raises_on_the_overloaded_event() -> None:
    with (
        anthropic_client(stream("stream_overloaded_error.sse"), "text/event-stream") as client,
        pytest.raises(anthropic.APIStatusError) as caught,
    ):
        with client.messages.stream(model="m", max_tokens=9, messages=MESSAGES) as s:
            s.get_final_message()
    ours = parse_stream(stream("stream_overloaded_error.sse"))[1]
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"] == {"type": ours.error_type, "message": ours.error_message}


def test_sdk_reads_the_error_body_alike() -> None:
    data = fixture("anthropic_messages", "error_invalid_request.json")
    with (
        anthropic_client(data, "application/json", status=400) as client,
        pytest.raises(anthropic.BadRequestError) as caught,
    ):
        client.messages.create(model="m", max_tokens=9, messages=MESSAGES)
    ours = parse_body(data)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"] == {"type": ours.error_type, "message": ours.error_message}
