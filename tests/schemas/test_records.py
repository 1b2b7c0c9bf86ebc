"""The stored records: typed, frozen, with the documented defaults."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from toolwatch.schemas.records import Body, LlmCall, ToolCall, ToolResult

TS = datetime(2025, 1, 1, tzinfo=UTC)
CALL = {
    "call_id": uuid.UUID(int=1),
    "ts": TS,
    "upstream": "openai",
    "api": "openai",
    "endpoint": "chat_completions",
    "method": "POST",
    "path": "/v1/chat/completions",
    "model": "gpt-4.1",
}
TOOL_CALL = {
    "tool_call_uid": uuid.UUID(int=2),
    "call_id": uuid.UUID(int=1),
    "ts": TS,
    "upstream": "openai",
    "model": "m",
    "call_index": 0,
    "tool_call_id": "call_1",
    "name": "f",
    "raw_arguments": "{",
}
RESULT = {
    "result_uid": uuid.UUID(int=3),
    "call_id": uuid.UUID(int=1),
    "ts": TS,
    "upstream": "openai",
    "tool_call_id": "call_1",
    "content": "ok",
    "content_bytes": 2,
}
BODY = {"call_id": uuid.UUID(int=1), "ts": TS, "request_body": b"{}", "response_body": b"\xff"}


def test_llm_call_defaults() -> None:
    c = LlmCall(**CALL)
    assert (c.stream, c.status, c.outcome, c.parse_status) == (False, 0, "ok", "ok")
    assert c.error is c.parse_error is c.finish_reason is c.response_id is None
    assert c.input_tokens is c.cache_read_tokens is c.cache_write_tokens is c.output_tokens is None
    assert c.declared_tools == [] and c.tool_schemas == [] and c.prior_tool_call_ids == []
    assert (c.session_id, c.agent, c.user_id, c.request_id) == ("", "", "", "")
    assert c.properties == {}


def test_tool_call_arguments_default_to_null() -> None:
    tc = ToolCall(**TOOL_CALL)
    assert tc.arguments is None
    assert tc.raw_arguments == "{"
    assert (tc.session_id, tc.agent) == ("", "")


def test_tool_result_defaults() -> None:
    r = ToolResult(**RESULT)
    assert r.truncated is False
    assert r.is_error is None


def test_body_keeps_bytes() -> None:
    b = Body(**BODY)
    assert b.response_body == b"\xff"
    assert (b.request_truncated, b.response_truncated) == (False, False)


@pytest.mark.parametrize(
    ("model", "fields"), [(LlmCall, CALL), (ToolCall, TOOL_CALL), (ToolResult, RESULT), (Body, BODY)]
)
def test_records_are_frozen(model: type, fields: dict) -> None:  # type: ignore[type-arg]
    a = model(**fields)
    first = next(iter(fields))
    with pytest.raises(ValidationError):
        setattr(a, first, fields[first])


@pytest.mark.parametrize(
    ("model", "fields"), [(LlmCall, CALL), (ToolCall, TOOL_CALL), (ToolResult, RESULT), (Body, BODY)]
)
def test_every_required_field_is_required(model: type, fields: dict) -> None:  # type: ignore[type-arg]
    for name in fields:
        with pytest.raises(ValidationError, match=name):
            model(**{k: v for k, v in fields.items() if k != name})


def test_default_lists_are_not_shared() -> None:
    a, b = LlmCall(**CALL), LlmCall(**CALL)
    a.declared_tools.append("x")
    assert b.declared_tools == []


def test_ids_and_times_are_parsed() -> None:
    c = LlmCall(**{**CALL, "call_id": "00000000-0000-0000-0000-000000000001", "ts": "2025-01-01T00:00:00Z"})
    assert c.call_id == uuid.UUID(int=1)
    assert c.ts == TS


def test_wrong_types_are_refused() -> None:
    with pytest.raises(ValidationError):
        LlmCall(**{**CALL, "input_tokens": "many"})
    with pytest.raises(ValidationError):
        ToolCall(**{**TOOL_CALL, "call_index": "first"})
    with pytest.raises(ValidationError):
        LlmCall(**{**CALL, "properties": {"a": 1}})
