"""Records are built without validation (``_Record.trusted``): every field in declaration order, each of the
type its field declares, so that validating a built record again gives an identical one. Checked over
every recorded sample of every API, streamed and not, with tool calls, results, errors and damage."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from toolwatch.providers import parse
from toolwatch.recorder import build as build_module
from toolwatch.recorder.build import BuildOptions, build
from toolwatch.recorder.links import Links
from toolwatch.schemas.exchange import Exchange
from toolwatch.spool.frame import Frame

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PATHS = {
    "openai_chat": ("openai", "/v1/chat/completions"),
    "anthropic_messages": ("anthropic", "/v1/messages"),
    "openai_responses": ("openai", "/v1/responses"),
    "gemini": ("gemini", "/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
}


def samples() -> list[tuple[str, Path, Path]]:
    out = []
    for folder in PATHS:
        files = sorted((FIXTURES / folder).glob("*.*"))
        requests = [f for f in files if f.name.startswith("request_")] or [files[0]]
        for response in files:
            if response.suffix in (".json", ".sse") and not response.name.startswith("request_"):
                out.append((folder, requests[len(out) % len(requests)], response))
    return out


def frame(folder: str, request: Path, response: Path, **over: Any) -> Frame:
    api, path = PATHS[folder]
    fields: dict[str, Any] = {
        "id": uuid.UUID("01994d0a-4c1a-7e3b-9f00-00000000abcd"),
        "started_at": datetime(2025, 9, 15, 12, 0, 0, 123456, tzinfo=UTC),
        "upstream": folder,
        "api": api,
        "method": "POST",
        "path": path,
        "status": 200,
        "latency_ms": 12,  # an integer, as JSON may carry it: validated into a float
        "response_content_type": "text/event-stream" if response.suffix == ".sse" else "application/json",
        "session_id": "s-1",
        "properties": {"team": "a"},
        "response_headers": {"x-request-id": "req-1"},
        **over,
    }
    return Frame(Exchange(**fields), request.read_bytes(), response.read_bytes())


def shape(value: Any) -> Any:
    """The types in a value, containers included."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value)


def assert_as_validated(record: BaseModel) -> None:
    model = type(record)
    assert list(record.__dict__) == list(model.model_fields)
    again = model.model_validate(record.__dict__)
    assert again == record
    assert shape(again.__dict__) == shape(record.__dict__)


@pytest.mark.parametrize(("folder", "request_file", "response_file"), samples(), ids=lambda v: getattr(v, "name", v))
@pytest.mark.parametrize("over", [{}, {"status": 500, "outcome": "http_error", "error": "boom", "ttfb_ms": 3.5}])
def test_built_records_are_what_validation_would_make(
    folder: str, request_file: Path, response_file: Path, over: dict[str, Any]
) -> None:
    f = frame(folder, request_file, response_file, **over)
    records = build(f, parse(f), Links(), BuildOptions())
    for record in [records.call, *records.tool_calls, *records.tool_results, records.body]:
        assert record is not None
        assert_as_validated(record)


def test_ids_are_uuid5_of_the_same_names() -> None:
    for namespace in (build_module._NS_TOOL_CALL, build_module._NS_RESULT):
        for name in ("", "openai\x00call_1", "é☔\x00" * 40):
            assert build_module._uuid5(namespace, name) == uuid.uuid5(uuid.UUID(bytes=namespace), name)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=["Cs"]), max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=6))
def test_canonical_arguments_are_the_standard_librarys_text(value: dict[str, Any]) -> None:
    want = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    assert build_module._canonical(value) == want
    assert build_module._canonical(json.loads(want)) == want


def test_canonical_arguments_of_what_is_too_deep_or_not_an_object() -> None:
    deep: Any = {}
    for _ in range(400):  # deeper than orjson writes: the standard library writes it
        deep = {"a": deep}
    assert build_module._canonical(deep) == json.dumps(deep, separators=(",", ":"), sort_keys=True)
    assert build_module._canonical([1]) is None and build_module._canonical(None) is None
