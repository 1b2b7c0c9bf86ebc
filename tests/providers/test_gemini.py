"""Gemini parsers: what each wire sample in tests/fixtures/gemini/ contains (their README says what each
one is; the values below are read off the samples by hand), and the edge cases of this API. What every
endpoint promises (any split, mutated input, the official ``google-genai`` SDK reading the ``alt=sse``
samples and the bodies alike) is checked in ``test_endpoints``; the JSON array stream, which the SDK
never asks for, is checked here against the SSE form of the same chunks, as are the SDK's failures."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.genai import errors as genai_errors

from toolwatch.providers.base import ParsedResponse, ToolCallOut, ToolResultIn, Usage
from toolwatch.providers.gemini import (
    GeminiParser,
    GeminiStreamParser,
    parse_request,
    parse_stream_request,
    parse_usage,
    synthetic_call_id,
)

from .helpers import fixture, replay
from .sdks import genai_client

SSE_STREAMS = ["stream_text.sse", "stream_function_calls.sse", "stream_broken_off.sse"]
ARRAYS = ["array_text.json", "array_function_calls.json", "array_broken_off.json"]
SIG = "BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/"
WEATHER_ARGS = '{"location":"東京","note":"☔ 傘"}'


def data(name: str) -> bytes:
    return fixture("gemini", name)


def parse_sse(raw: bytes) -> tuple[list[ToolCallOut], ParsedResponse]:
    return replay(GeminiStreamParser, [raw])


def parse_json(raw: bytes) -> tuple[list[ToolCallOut], ParsedResponse]:
    return replay(GeminiParser, [raw])


# --- bodies ---------------------------------------------------------------------------------------


def test_body_text() -> None:
    _, result = parse_json(data("text.json"))
    assert (result.model, result.response_id, result.text) == (
        "gemini-2.5-flash",
        "k7fHaL2bD8qSjMcP0sXw4Aw",
        "Paris is the capital of France.",
    )
    assert result.finish_reason == "STOP" and result.tool_calls == ()
    assert result.usage == Usage(input_uncached=9, cache_read=None, cache_write=None, output=7 + 21)  # + thoughts
    assert (result.complete, result.errors, result.skipped) == (True, (), 0)


def test_body_function_calls_without_ids_get_the_ids_a_resending_request_computes() -> None:
    reported, result = parse_json(data("function_calls.json"))
    ids = (synthetic_call_id(SIG, 0, "get_weather", {"location": "Boston, MA", "unit": "celsius"}),)
    ids += (synthetic_call_id(SIG, 1, "get_time", {"timezone": "America/New_York"}),)
    assert result.tool_calls == (
        ToolCallOut(0, ids[0], "get_weather", '{"location":"Boston, MA","unit":"celsius"}'),
        ToolCallOut(1, ids[1], "get_time", '{"timezone":"America/New_York"}'),
    )
    assert reported == list(result.tool_calls)
    assert result.finish_reason == "STOP"  # Gemini says STOP for function calls too
    assert result.skipped == 1  # the thought part
    assert result.usage == Usage(input_uncached=142 - 64, cache_read=64, cache_write=None, output=38 + 117)
    req = parse_request(data("request_function_responses.json"))
    assert req.prior_tool_call_ids == ids == req.first_reply_tool_ids
    assert [r.tool_call_id for r in req.tool_results] == list(ids)


def test_body_function_calls_with_ids() -> None:
    _, result = parse_json(data("function_calls_with_ids.json"))
    assert result.tool_calls == (
        ToolCallOut(0, "fc_9d2b7c1e", "read_file", '{"path":"src/main.py"}'),
        ToolCallOut(1, "fc_4a8e0f36", "list_dir", "{}"),
    )
    assert result.model == "gemini-3-pro-preview"


def test_blocked_prompt_and_error_body() -> None:
    _, blocked = parse_json(data("blocked.json"))
    assert (blocked.finish_reason, blocked.usage.input_uncached, blocked.complete) == ("PROHIBITED_CONTENT", 12, True)
    _, error = parse_json(data("error_invalid_argument.json"))
    assert error.error_type == "INVALID_ARGUMENT"
    assert error.error_message is not None and "Name cannot be empty" in error.error_message


def test_usage() -> None:
    assert parse_usage({"promptTokenCount": 10, "candidatesTokenCount": 2}) == Usage(10, None, None, 2)
    assert parse_usage({"promptTokenCount": 10}) == Usage(10, None, None, None)
    assert parse_usage({"prompt_token_count": 4, "thoughts_token_count": 3}) == Usage(4, None, None, 3)
    assert parse_usage([]) is None


# --- streams --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sse", "array"), list(zip(SSE_STREAMS, ARRAYS, strict=True)))
def test_the_json_array_stream_reads_as_its_sse_twin(sse: str, array: str) -> None:
    reported_sse, from_sse = parse_sse(data(sse))
    reported_array, from_array = parse_json(data(array))
    assert reported_sse == reported_array
    fields = ("model", "response_id", "tool_calls", "finish_reason", "usage", "text", "complete")
    assert [getattr(from_sse, f) for f in fields] == [getattr(from_array, f) for f in fields]


def test_stream_function_calls() -> None:
    reported, result = parse_sse(data("stream_function_calls.sse"))
    weather = ToolCallOut(
        0, synthetic_call_id(SIG, 0, "get_weather", json.loads(WEATHER_ARGS)), "get_weather", WEATHER_ARGS
    )
    assert reported[0] == weather and result.tool_calls[0] == weather
    assert result.tool_calls[1].name == "get_time" and result.tool_calls[1].raw_arguments == '{"timezone":"Asia/Tokyo"}'
    assert result.text == "Checking the weather in 東京 🌤️"
    assert result.usage == Usage(input_uncached=96, cache_read=None, cache_write=None, output=41 + 75)
    assert (result.finish_reason, result.complete, result.errors) == ("STOP", True, ())


def test_stream_text() -> None:
    _, result = parse_sse(data("stream_text.sse"))
    assert result.text == "The three primary colors are red, yellow and blue."
    assert result.usage.output == 42 and result.complete


@pytest.mark.parametrize("name", ["stream_broken_off.sse", "array_broken_off.json"])
def test_a_stream_cut_mid_chunk_keeps_the_chunks_that_arrived(name: str) -> None:
    reported, result = replay(GeminiStreamParser if name.endswith(".sse") else GeminiParser, [data(name)])
    assert [c.name for c in reported] == ["get_weather"] == [c.name for c in result.tool_calls]
    assert result.text == "Checking the weather in 東京 🌤️"
    assert not result.complete and result.finish_reason is None and result.usage.output is None
    assert len(result.errors) >= 2


def test_array_stream_reports_each_call_as_its_element_completes() -> None:
    raw = data("array_function_calls.json")
    parser = GeminiParser()
    first = raw.index(b'"get_time"')
    assert [c.name for c in parser.feed(raw[:first])] == ["get_weather"]
    assert [c.name for c in parser.feed(raw[first:])] == ["get_time"]
    assert parser.finish().complete


# --- edge cases not in the samples ------------------------------------------------------------------


def chunk(parts: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0, **extra}]}


def test_unknown_parts_are_counted_other_candidates_noted() -> None:
    body = chunk([{"text": "a"}, {"inlineData": {"mimeType": "image/png", "data": "AA=="}}, {"brandNew": 1}])
    body["candidates"].append({"index": 1, "content": {"parts": [{"text": "other"}]}})
    _, result = parse_json(json.dumps(body).encode())
    assert (result.text, result.skipped) == ("a", 2)
    assert result.errors == ("candidates other than index 0 ignored",)


def test_error_inside_a_stream() -> None:
    raw = b"data: " + json.dumps(chunk([{"text": "par"}])).encode() + b"\r\n\r\n"
    raw += b'data: {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}\r\n\r\n'
    _, result = parse_sse(raw)
    assert (result.text, result.error_type, result.error_message, result.complete) == (
        "par",
        "UNAVAILABLE",
        "overloaded",
        False,
    )
    assert result.errors == ()  # the error explains the missing finish reason


def test_garbage_between_array_elements_is_skipped_and_noted() -> None:
    one = json.dumps(chunk([{"text": "a"}]))
    two = json.dumps(chunk([{"text": "b"}], finishReason="STOP"))
    _, result = parse_json(f"[{one}, oops {two}]".encode())
    assert (result.text, result.complete) == ("ab", True)
    assert result.errors == ("4 byte(s) outside any JSON object skipped",)


# --- requests -------------------------------------------------------------------------------------


def test_request_with_function_responses() -> None:
    req = parse_request(data("request_function_responses.json"))
    assert (req.model, req.stream, req.message_count, req.error) == (None, False, 5, None)
    assert [t.name for t in req.tools] == ["get_weather", "get_time", "list_dir", "googleSearch"]
    weather_schema = json.loads(req.tools[0].schema_json or "")
    assert weather_schema["type"] == "object" and weather_schema["properties"]["location"] == {"type": "string"}
    assert req.tools[2].schema_json is None
    ids = req.prior_tool_call_ids
    assert req.tool_results == (
        ToolResultIn(ids[0], '{"temp_c": 18, "sky": "clear"}', None),
        ToolResultIn(ids[1], '{"error":"timezone database unavailable"}', True),
    )
    assert req.system_text == "You are a travel assistant.\nUse the tools."
    assert req.first_user_text == "Weather in Boston\nand the time in New York?"
    assert req.first_reply_text == ""  # the thought part is not reply text
    assert parse_stream_request(data("request_function_responses.json")).stream


def test_responses_pair_with_calls_by_id_or_by_name_in_order() -> None:
    contents = [
        {"role": "user", "parts": [{"text": "go"}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "f", "args": {"n": 1}}},
                {"functionCall": {"name": "g", "args": {}}},
                {"functionCall": {"name": "f", "args": {"n": 2}}},
                {"functionCall": {"id": "given", "name": "h", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "h", "id": "given", "response": {"output": "H"}}},
                {"functionResponse": {"name": "f", "response": {"result": "F1"}}},
                {"functionResponse": {"name": "f", "response": {"output": "F2"}}},
                {"functionResponse": {"name": "g", "response": {"a": 1}}},
                {"functionResponse": {"name": "zzz", "response": {}}},
            ],
        },
    ]
    req = parse_request(json.dumps({"contents": contents}).encode())
    f1, g, f2, h = req.prior_tool_call_ids
    assert h == "given" and len({f1, g, f2, h}) == 4
    assert [(r.tool_call_id, r.content) for r in req.tool_results[:4]] == [
        (h, "H"),
        (f1, "F1"),
        (f2, "F2"),
        (g, '{"a":1}'),
    ]
    assert req.error is not None and "answers no call" in req.error


def test_a_repeated_id_answers_its_calls_in_order() -> None:
    turn = [{"functionCall": {"id": "x", "name": "f", "args": {}}}] * 2 + [{"functionCall": {"name": "f"}}]
    answers = [{"functionResponse": {"name": "f", "id": "x", "response": {}}}]
    answers += [{"functionResponse": {"name": "f", "response": {}}}] * 3
    contents = [{"role": "model", "parts": turn}, {"role": "user", "parts": answers}]
    req = parse_request(json.dumps({"contents": contents}).encode())
    first_x, second_x, synthetic = req.prior_tool_call_ids
    assert (first_x, second_x) == ("x", "x") and synthetic.startswith("gemini-")
    ids = [r.tool_call_id for r in req.tool_results]
    assert ids[:3] == ["x", "x", synthetic] and ids[3].startswith("gemini-") and ids[3] != synthetic
    assert req.error is not None and "answers no call" in req.error


@pytest.mark.timeout(5)
def test_pairing_25_000_responses_by_id_takes_linear_time() -> None:
    # a list's remove and pop(0) made this take 10 s
    calls = [{"functionCall": {"id": f"id{i}", "name": "f", "args": {}}} for i in range(25_000)]
    answers = [{"functionResponse": {"name": "f", "id": f"id{i}", "response": {}}} for i in reversed(range(25_000))]
    contents = [{"role": "model", "parts": calls}, {"role": "user", "parts": answers}]
    req = parse_request(json.dumps({"contents": contents}).encode())
    assert len(req.tool_results) == 25_000 and req.error is None


@pytest.mark.parametrize("depth", [400, 900, 1015])
def test_parameters_nested_deeper_than_python_recurses_are_kept(depth: int) -> None:
    # lowering OBJECT to object recursed once per level (twice through a list) and raised RecursionError
    parameters = "[" * depth + '{"type": "OBJECT"}' + "]" * depth
    body = '{"tools": [{"functionDeclarations": [{"name": "f", "parameters": ' + parameters + "}]}]}"
    req = parse_request(body.encode())
    assert [t.name for t in req.tools] == ["f"] and req.tools[0].schema_json is not None


def test_synthetic_ids_differ_by_signature_position_name_and_arguments() -> None:
    base = synthetic_call_id("sig", 0, "f", {"a": 1, "b": 2})
    assert base == synthetic_call_id("sig", 0, "f", {"b": 2, "a": 1})  # key order does not matter
    others = [
        synthetic_call_id("sig2", 0, "f", {"a": 1, "b": 2}),
        synthetic_call_id("sig", 1, "f", {"a": 1, "b": 2}),
        synthetic_call_id("sig", 0, "g", {"a": 1, "b": 2}),
        synthetic_call_id("sig", 0, "f", {"a": 1}),
    ]
    assert len({base, *others}) == 5


@pytest.mark.parametrize("body", [b'{"contents": 1}', b'{"tools": [{"functionDeclarations": [{}]}], "contents": []}'])
def test_request_garbage_sets_error(body: bytes) -> None:
    assert parse_request(body).error


# --- the official SDK fails on the error and cut samples -----------------------------------------


def test_sdk_fails_on_the_cut_stream_we_keep_its_start() -> None:
    client = genai_client(data("stream_broken_off.sse"), "text/event-stream")
    with pytest.raises(genai_errors.UnknownApiResponseError):
        list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert parse_sse(data("stream_broken_off.sse"))[1].tool_calls


def test_sdk_reads_the_error_and_the_block_alike() -> None:
    raw = data("error_invalid_argument.json")
    with pytest.raises(genai_errors.ClientError) as caught:
        genai_client(raw, "application/json", 400).models.generate_content(model="m", contents="hi")
    ours = parse_json(raw)[1]
    assert (caught.value.status, caught.value.message) == (ours.error_type, ours.error_message)
    blocked = genai_client(data("blocked.json"), "application/json").models.generate_content(model="m", contents="hi")
    assert blocked.prompt_feedback is not None and blocked.prompt_feedback.block_reason is not None
    assert blocked.prompt_feedback.block_reason.value == parse_json(data("blocked.json"))[1].finish_reason
