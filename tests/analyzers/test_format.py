"""Plain-text output of the reading commands."""

from __future__ import annotations

from toolwatch.analyzers.format import format_calls, render


def test_format_calls_shows_tool_calls_and_invalid_arguments() -> None:
    rows = [
        {
            "ts": "2026-11-25T10:00:00.123000+00:00",
            "upstream": "openai",
            "model": "gpt-x",
            "status": 200,
            "outcome": "ok",
            "finish_reason": "tool_calls",
            "input_tokens": 10,
            "output_tokens": 5,
            "latency_ms": 12.3,
            "session_id": "s1",
            "parse_status": "ok",
            "tool_calls": [
                {
                    "call_index": 0,
                    "tool_call_id": "call_1",
                    "name": "lookup",
                    "raw_arguments": '{"a": 1}',
                    "arguments": {"a": 1},
                    "malformed_kind": None,
                    "outcome": "ok",
                    "error_rule": None,
                },
                {
                    "call_index": 1,
                    "tool_call_id": "call_2",
                    "name": "lookup",
                    "raw_arguments": "{bad",
                    "arguments": None,
                    "malformed_kind": "invalid_json",
                    "outcome": "error",
                    "error_rule": "is_error",
                },
            ],  # fmt: skip
        }
    ]
    text = render(format_calls(rows), color=False)
    assert "2026-11-25 10:00:00.123Z  openai/gpt-x" in text and "session=s1" in text
    assert '#0 lookup({"a": 1}) id=call_1  => ok' in text
    assert (
        "#1 lookup({bad) id=call_2  [arguments not a JSON object]  malformed: invalid_json  => error (is_error)" in text
    )
    assert "None" not in text and "\x1b" not in text
    assert render(format_calls([]), color=False) == "no calls recorded yet"
