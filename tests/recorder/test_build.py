"""Building records from one spool frame: what each field comes from, stable ids, and every way parsing
can go wrong without losing the call."""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from toolwatch.providers import parse
from toolwatch.recorder.build import BuildOptions, Records
from toolwatch.recorder.build import build as build_records
from toolwatch.recorder.links import Links
from toolwatch.schemas.exchange import Exchange
from toolwatch.spool.frame import Frame


def build(frame: Frame, opts: BuildOptions, links: Links | None = None) -> Records:
    """The recorder's step for one frame: parse it, then build its records."""
    return build_records(frame, parse(frame), links or Links(), opts)


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
T0 = datetime(2025, 9, 15, 12, 30, 0, 250000, tzinfo=UTC)
EX_ID = uuid.UUID("01994d0a-4c1a-7e3b-9f00-0123456789ab")

OPENAI_REQUEST: dict[str, Any] = {
    "model": "gpt-4.1",
    "messages": [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_prev", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_prev", "content": "sunny, 21°C"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        },
        {"type": "function", "function": {"name": "no_params"}},
    ],
}
OPENAI_RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city'}},
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 40}},
}


def exchange(**over: Any) -> Exchange:
    fields: dict[str, Any] = {
        "id": EX_ID,
        "started_at": T0,
        "upstream": "openai",
        "api": "openai",
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": 200,
        "latency_ms": 812.5,
        "ttfb_ms": 300.25,
        "request_content_type": "application/json",
        "response_content_type": "application/json",
        "request_size": 1234,
        "response_size": 567,
        "session_id": "sess-9",
        "agent": "planner",
        "user_id": "u-7",
        "properties": {"env": "ci"},
        "response_headers": {"x-request-id": "req_abc", "x-ratelimit-remaining-requests": "9"},
    }
    fields.update(over)
    return Exchange(**fields)


def openai_frame(request: Any = None, response: Any = None, **over: Any) -> Frame:
    req = OPENAI_REQUEST if request is None else request
    resp = OPENAI_RESPONSE if response is None else response
    return Frame(
        exchange(**over),
        req if isinstance(req, bytes) else json.dumps(req).encode(),
        resp if isinstance(resp, bytes) else json.dumps(resp).encode(),
    )


def anthropic_frame(request: bytes, response: bytes, **over: Any) -> Frame:
    fields = {
        "upstream": "anthropic",
        "api": "anthropic",
        "path": "/v1/messages",
        "response_content_type": "text/event-stream; charset=utf-8",
        "response_headers": {"request-id": "req_ant_1"},
        **over,
    }
    return Frame(exchange(**fields), request, response)


def fixture(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


OPTS = BuildOptions()


# -- OpenAI chat completions, JSON body ------------------------------------------------------------


def test_openai_call_record() -> None:
    call = build(openai_frame(), OPTS).call
    assert call.call_id == EX_ID
    assert call.ts == T0
    assert (call.upstream, call.api, call.endpoint, call.method) == ("openai", "openai", "chat_completions", "POST")
    assert call.path == "/v1/chat/completions"
    assert call.model_requested == "gpt-4.1"
    assert call.model_returned == "gpt-4.1-2025-04-14"
    assert call.model == "gpt-4.1-2025-04-14"
    assert call.stream is False
    assert (call.status, call.outcome, call.error) == (200, "ok", None)
    assert (call.parse_status, call.parse_error) == ("ok", None)
    assert call.finish_reason == "tool_calls"
    assert call.response_id == "chatcmpl-1"
    assert (call.input_tokens, call.cache_read_tokens, call.cache_write_tokens, call.output_tokens) == (60, 40, None, 7)
    assert (call.latency_ms, call.ttfb_ms) == (812.5, 300.25)
    assert (call.request_bytes, call.response_bytes) == (1234, 567)
    assert call.declared_tools == ["get_weather", "no_params"]
    assert json.loads(call.tool_schemas[0]) == {"type": "object", "properties": {"city": {"type": "string"}}}
    assert call.tool_schemas[1] == ""
    assert (call.tool_call_count, call.tool_result_count, call.message_count) == (2, 1, 3)
    assert call.prior_tool_call_ids == ["call_prev"]
    assert call.text_chars == len("Checking.")
    assert (call.session_id, call.agent, call.user_id) == ("sess-9", "planner", "u-7")
    assert call.properties == {"env": "ci"}
    assert call.request_id == "req_abc"


def test_openai_tool_calls() -> None:
    built = build(openai_frame(), OPTS)
    a, b = built.tool_calls
    assert (a.call_index, a.tool_call_id, a.name) == (0, "call_a", "get_weather")
    assert a.raw_arguments == '{"city": "Paris"}'
    assert a.arguments == '{"city":"Paris"}'  # compact JSON
    assert (b.call_index, b.tool_call_id) == (1, "call_b")
    assert b.raw_arguments == '{"city'
    assert b.arguments is None  # invalid JSON: only the raw text is kept
    for tc in built.tool_calls:
        assert (tc.call_id, tc.ts, tc.upstream, tc.model) == (EX_ID, T0, "openai", "gpt-4.1-2025-04-14")
        assert (tc.session_id, tc.agent) == ("sess-9", "planner")
    assert a.tool_call_uid != b.tool_call_uid


@pytest.mark.parametrize("raw", ["[1, 2]", '"text"', "42", "null", "", "{} {}"])
def test_arguments_that_are_not_one_json_object_are_null(raw: str) -> None:
    resp = json.loads(json.dumps(OPENAI_RESPONSE))
    resp["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = raw
    tc = build(openai_frame(response=resp), OPTS).tool_calls[0]
    assert tc.raw_arguments == raw
    assert tc.arguments is None


def test_arguments_keep_non_ascii_and_nesting() -> None:
    resp = json.loads(json.dumps(OPENAI_RESPONSE))
    raw = '{ "city" : "東京", "opts": {"units": ["c"]} }'
    resp["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = raw
    tc = build(openai_frame(response=resp), OPTS).tool_calls[0]
    assert tc.arguments == '{"city":"東京","opts":{"units":["c"]}}'


def test_arguments_with_a_big_integer_are_still_an_object() -> None:
    resp = json.loads(json.dumps(OPENAI_RESPONSE))
    raw = '{"id": 123456789012345678901234567890}'
    resp["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = raw
    tc = build(openai_frame(response=resp), OPTS).tool_calls[0]
    assert tc.arguments is not None
    assert json.loads(tc.arguments) == {"id": 123456789012345678901234567890}


def test_openai_tool_result_record() -> None:
    [tr] = build(openai_frame(), OPTS).tool_results
    assert (tr.call_id, tr.ts, tr.upstream, tr.tool_call_id) == (EX_ID, T0, "openai", "call_prev")
    assert tr.content == "sunny, 21°C"
    assert tr.content_bytes == len("sunny, 21°C".encode())
    assert tr.truncated is False
    assert tr.is_error is None  # OpenAI has no error flag
    assert (tr.session_id, tr.agent) == ("sess-9", "planner")


def test_body_is_kept_as_sent() -> None:
    frame = openai_frame()
    body = build(frame, OPTS).body
    assert body is not None
    assert (body.call_id, body.ts) == (EX_ID, T0)
    assert (body.request_body, body.response_body) == (frame.request, frame.response)
    assert (body.request_truncated, body.response_truncated) == (False, False)


def test_bodies_can_be_turned_off() -> None:
    assert build(openai_frame(), BuildOptions(store_bodies=False)).body is None


def test_model_falls_back_to_the_requested_one() -> None:
    call = build(openai_frame(response=b"", status=0, outcome="connect_error", error="refused"), OPTS).call
    assert call.model == "gpt-4.1" and call.model_returned is None
    assert (call.outcome, call.error, call.status) == ("connect_error", "refused", 0)
    assert call.parse_status == "ok"  # nothing came back, nothing failed to parse


def test_provider_error_message_becomes_the_error() -> None:
    frame = openai_frame(
        response=fixture("openai_chat", "error_invalid_request.json"), status=400, outcome="http_error"
    )
    call = build(frame, OPTS).call
    assert call.error is not None and call.error.startswith("An assistant message with 'tool_calls'")
    assert call.tool_call_count == 0


# -- stable ids ------------------------------------------------------------------------------------


def _ids(built: Records) -> tuple[Any, ...]:
    return (
        built.call.call_id,
        [t.tool_call_uid for t in built.tool_calls],
        [r.result_uid for r in built.tool_results],
    )


def test_ids_are_stable_across_builds() -> None:
    assert _ids(build(openai_frame(), OPTS)) == _ids(build(openai_frame(), OPTS))
    assert build(openai_frame(), OPTS) == build(openai_frame(), OPTS)


def test_ids_differ_between_exchanges_but_a_result_keeps_its_id() -> None:
    one = build(openai_frame(), OPTS)
    other = build(openai_frame(id=uuid.UUID(int=5)), OPTS)
    assert {t.tool_call_uid for t in one.tool_calls}.isdisjoint({t.tool_call_uid for t in other.tool_calls})
    # the same result resent in a later request is the same result
    assert one.tool_results[0].result_uid == other.tool_results[0].result_uid
    elsewhere = build(openai_frame(upstream="azure"), OPTS)
    assert elsewhere.tool_results[0].result_uid != one.tool_results[0].result_uid


# -- tool result truncation ------------------------------------------------------------------------


def _with_result(content: str) -> Frame:
    req = json.loads(json.dumps(OPENAI_REQUEST))
    req["messages"][2]["content"] = content
    return openai_frame(request=req)


def test_result_at_the_limit_is_not_truncated() -> None:
    [tr] = build(_with_result("a" * 300), BuildOptions(result_max_bytes=300)).tool_results
    assert (tr.content, tr.content_bytes, tr.truncated) == ("a" * 300, 300, False)


def test_result_over_the_limit_is_truncated() -> None:
    [tr] = build(_with_result("a" * 301), BuildOptions(result_max_bytes=300)).tool_results
    assert (tr.content, tr.content_bytes, tr.truncated) == ("a" * 300, 301, True)


@pytest.mark.parametrize("limit", [256, 257, 258, 259, 260])
def test_truncation_never_splits_a_character(limit: int) -> None:
    text = "x" + "€" * 200  # 1 + 3 * 200 bytes
    [tr] = build(_with_result(text), BuildOptions(result_max_bytes=limit)).tool_results
    kept = tr.content.encode()
    assert len(kept) <= limit
    assert len(kept) > limit - 3  # at most one partial character is dropped
    assert text.startswith(tr.content)
    assert tr.content_bytes == len(text.encode())
    assert tr.truncated is True


# -- what is not parsed ----------------------------------------------------------------------------


def test_unparsed_endpoint_is_other() -> None:
    frame = Frame(exchange(method="GET", path="/v1/models", response_headers={}), b"", b'{"data": []}')
    built = build(frame, OPTS)
    call = built.call
    assert (call.endpoint, call.parse_status, call.parse_error) == ("other", "not_parsed", None)
    assert call.model == "" and call.model_requested is None
    assert call.method == "GET" and call.path == "/v1/models"
    assert call.request_id == ""
    assert built.tool_calls == [] and built.tool_results == []
    assert built.body is None


def test_endpoint_of_the_other_api_is_not_parsed() -> None:
    frame = openai_frame(api="anthropic")  # an OpenAI-shaped path on an Anthropic upstream
    assert build(frame, OPTS).call.parse_status == "not_parsed"


@pytest.mark.parametrize("side", ["request_truncated", "response_truncated"])
def test_truncated_bodies_are_too_large(side: str) -> None:
    built = build(openai_frame(**{side: True}), OPTS)
    call = built.call
    assert call.parse_status == "too_large"
    assert call.parse_error
    assert call.endpoint == "chat_completions"
    assert call.tool_call_count == 0 and built.tool_calls == [] and built.tool_results == []
    assert built.body is not None and getattr(built.body, side) is True


def test_request_that_is_not_json_is_a_parse_error_and_the_response_is_still_read() -> None:
    built = build(openai_frame(request=b"model=gpt-4.1&x=1"), OPTS)
    call = built.call
    assert call.parse_status == "parse_error"
    assert call.parse_error is not None and call.parse_error.startswith("request: ")
    assert "not JSON" in call.parse_error
    assert call.model_requested is None and call.model == "gpt-4.1-2025-04-14"
    assert len(built.tool_calls) == 2


def test_response_that_is_not_json_is_a_parse_error() -> None:
    call = build(openai_frame(response=b"<html>502 Bad Gateway</html>"), OPTS).call
    assert call.parse_status == "parse_error"
    assert call.parse_error is not None and call.parse_error.startswith("response: ")


def test_broken_response_of_a_failed_exchange_is_not_a_parse_error() -> None:
    cut = fixture("openai_chat", "stream_tool_call.sse")[:200]
    frame = openai_frame(
        response=cut, outcome="client_aborted", error="client disconnected", response_content_type="text/event-stream"
    )
    call = build(frame, OPTS).call
    assert call.parse_status == "ok"
    assert call.error == "client disconnected"


# -- content encodings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("GZIP ", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b, wbits=-zlib.MAX_WBITS)),  # raw deflate, as some servers send
        ("identity", lambda b: b),
    ],
)
def test_encoded_response_is_decoded(encoding: str, encode: Any) -> None:
    raw = json.dumps(OPENAI_RESPONSE).encode()
    frame = openai_frame(response=encode(raw), response_content_encoding=encoding)
    built = build(frame, OPTS)
    assert built.call.parse_status == "ok"
    assert [t.tool_call_id for t in built.tool_calls] == ["call_a", "call_b"]
    assert built.body is not None and built.body.response_body == raw  # redacted bodies are stored decoded
    full = build(frame, BuildOptions(store_bodies="full")).body
    assert full is not None and full.response_body == encode(raw)  # "full": stored as it came


def test_unsupported_encoding_is_noted() -> None:
    frame = openai_frame(response=b"\x1f\x9d\x90", response_content_encoding="compress")
    built = build(frame, OPTS)
    assert built.call.parse_status == "parse_error"
    assert "cannot decode compress" in (built.call.parse_error or "")
    assert built.tool_calls == []


def test_corrupt_gzip_is_noted() -> None:
    frame = openai_frame(response=b"\x1f\x8b not gzip at all", response_content_encoding="gzip")
    call = build(frame, OPTS).call
    assert call.parse_status == "parse_error" and "cannot decode gzip" in (call.parse_error or "")


def test_cut_off_gzip_response_still_records_the_call() -> None:
    whole = gzip.compress(json.dumps(OPENAI_RESPONSE).encode())
    frame = openai_frame(
        response=whole[: len(whole) // 2],
        response_content_encoding="gzip",
        outcome="upstream_timeout",
        error="idle timeout",
    )
    call = build(frame, OPTS).call
    assert call.call_id == EX_ID and call.outcome == "upstream_timeout"


# -- Anthropic messages, streamed ------------------------------------------------------------------


def test_anthropic_stream_records() -> None:
    request = json.dumps(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": "weather in SF?"}],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        }
    ).encode()
    built = build(anthropic_frame(request, fixture("anthropic_messages", "stream_tool_use.sse")), OPTS)
    call = built.call
    assert (call.endpoint, call.parse_status, call.stream) == ("messages", "ok", True)
    assert call.model_requested == "claude-sonnet-4-5"
    assert call.model == call.model_returned == "claude-sonnet-4-5-20250929"
    assert call.response_id == "msg_014p7gG3wDgGV9EUtLvnow3U"
    assert call.finish_reason == "tool_use"
    assert (call.input_tokens, call.cache_read_tokens, call.cache_write_tokens, call.output_tokens) == (
        472,
        1024,
        0,
        89,
    )
    assert call.text_chars == len("Okay, let's check the weather for San Francisco, CA:")
    assert call.request_id == "req_ant_1"
    assert call.declared_tools == ["get_weather"]
    [tc] = built.tool_calls
    assert (tc.call_index, tc.tool_call_id, tc.name) == (0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather")
    assert tc.raw_arguments == '{"location": "San Francisco, CA", "unit": "fahrenheit"}'
    assert tc.arguments == '{"location":"San Francisco, CA","unit":"fahrenheit"}'


def test_anthropic_stream_cut_short_is_a_parse_error() -> None:
    request = json.dumps({"model": "claude-sonnet-4-5", "stream": True, "messages": []}).encode()
    stream = fixture("anthropic_messages", "stream_tool_use.sse")
    cut = stream[: stream.index(b"event: message_delta")]
    call = build(anthropic_frame(request, cut), OPTS).call
    assert call.parse_status == "parse_error"
    assert "message_stop" in (call.parse_error or "")


def test_anthropic_tool_results() -> None:
    request = fixture("anthropic_messages", "request_tool_results.json")
    built = build(anthropic_frame(request, b"", status=0, outcome="connect_error"), OPTS)
    got = [(r.tool_call_id, r.content, r.is_error) for r in built.tool_results]
    assert got == [
        ("toolu_01CnXvq3G6eP9sKm2oWbRt4Y", "22°C, light rain ☔", None),
        ("toolu_01Lr8fTq1ZyA3bHx7NcM5uWd", "station ZRH-3 offline: timeout after 10s", True),
        ("toolu_01Pe6kJs9DwU2gVt4QxB8nRa", "21:04", False),
        ("toolu_01Xa2Sb5Dc8Fe1Gh4Jk7Lm0N", "", None),
    ]
    assert built.call.tool_result_count == 4
    assert built.call.prior_tool_call_ids == [
        "toolu_01CnXvq3G6eP9sKm2oWbRt4Y",
        "toolu_01Lr8fTq1ZyA3bHx7NcM5uWd",
        "toolu_01Pe6kJs9DwU2gVt4QxB8nRa",
        "toolu_01Xa2Sb5Dc8Fe1Gh4Jk7Lm0N",
    ]
    assert built.call.declared_tools == ["get_weather", "get_time", "web_search"]
    assert built.call.tool_schemas[2] == ""  # a server tool has no schema
    assert all(r.upstream == "anthropic" for r in built.tool_results)
