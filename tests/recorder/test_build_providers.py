"""Building records for the APIs added with issue 3: the requested model from a Gemini path, the Azure
deployment, and tool calls written into the reply text (``in_text``)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
EX_ID = uuid.UUID("01994d0a-4c1a-7e3b-9f00-00000000beef")
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def frame(request: Any, response: Any, **over: Any) -> Frame:
    fields: dict[str, Any] = {
        "id": EX_ID,
        "started_at": datetime(2025, 9, 15, 12, 0, tzinfo=UTC),
        "upstream": "glm",
        "api": "openai",
        "method": "POST",
        "path": "/chat/completions",
        "status": 200,
        "response_content_type": "application/json",
        **over,
    }
    raw = [v if isinstance(v, bytes) else json.dumps(v).encode() for v in (request, response)]
    return Frame(Exchange(**fields), raw[0], raw[1])


def chat_reply(content: str, tool_calls: list[Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "c", "model": "glm-4.5", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}


REQUEST = {"model": "glm-4.5", "messages": [{"role": "user", "content": "weather?"}], "tools": TOOLS}
IN_TEXT = 'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def test_a_call_written_in_the_text_is_recorded_as_in_text() -> None:
    built = build(frame(REQUEST, chat_reply(IN_TEXT)), BuildOptions())
    assert built.call.tool_call_count == 1
    [call] = built.tool_calls
    assert (call.tool_call_id, call.call_index, call.name) == (f"intext-{EX_ID}-0", 0, "get_weather")
    assert (call.raw_arguments, call.arguments, call.malformed_kind) == (
        '{"city":"Paris"}',
        '{"city":"Paris"}',
        "in_text",
    )
    assert "tool_call_tag" in call.malformed_detail
    again = build(frame(REQUEST, chat_reply(IN_TEXT)), BuildOptions())
    assert again.tool_calls[0].tool_call_uid == call.tool_call_uid  # deterministic ids


def test_in_text_detection_only_without_structured_calls() -> None:
    structured = [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]
    built = build(frame(REQUEST, chat_reply(IN_TEXT, structured)), BuildOptions())
    assert [c.malformed_kind for c in built.tool_calls] == [""] and built.call.tool_call_count == 1
    prose = build(frame(REQUEST, chat_reply("It is sunny in Paris.")), BuildOptions())
    assert (prose.tool_calls, prose.call.tool_call_count) == ([], 0)
    other = build(frame(b"", IN_TEXT.encode(), path="/embeddings"), BuildOptions())
    assert other.tool_calls == [] and other.call.endpoint == "other"


def test_a_fenced_call_counts_only_for_a_declared_tool() -> None:
    fenced = '```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```'
    assert [c.name for c in build(frame(REQUEST, chat_reply(fenced)), BuildOptions()).tool_calls] == ["get_weather"]
    undeclared = {**REQUEST, "tools": []}
    assert build(frame(undeclared, chat_reply(fenced)), BuildOptions()).tool_calls == []


def test_gemini_model_comes_from_the_path() -> None:
    request = (FIXTURES / "gemini" / "request_function_responses.json").read_bytes()
    response = (FIXTURES / "gemini" / "array_function_calls.json").read_bytes()
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    built = build(frame(request, response, upstream="gemini", api="gemini", path=path), BuildOptions())
    call = built.call
    assert (call.endpoint, call.stream, call.parse_status) == ("stream_generate_content", True, "ok")
    assert (call.model_requested, call.model_returned, call.model) == (
        "gemini-2.5-flash",
        "gemini-2.5-flash",
        "gemini-2.5-flash",
    )
    assert call.deployment == "" and call.tool_call_count == 2 and call.tool_result_count == 2
    assert [t.is_error for t in built.tool_results] == [None, True]


def test_azure_deployment_next_to_the_returned_model() -> None:
    path = "/openai/deployments/gpt4o-prod/chat/completions"
    response = chat_reply("hi") | {"model": "gpt-4o-2024-11-20"}
    built = build(
        frame({"messages": [{"role": "user", "content": "x"}]}, response, upstream="az", api="azure", path=path),
        BuildOptions(),
    )
    assert (built.call.deployment, built.call.model_requested, built.call.model) == (
        "gpt4o-prod",
        None,
        "gpt-4o-2024-11-20",
    )
    plain = build(frame(REQUEST, chat_reply("hi")), BuildOptions())
    assert plain.call.deployment == ""
