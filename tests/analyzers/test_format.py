"""Plain-text output of the reading commands."""

from __future__ import annotations

from toolwatch.analyzers.format import format_calls


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
            "tool_calls": [[0, "call_1", "lookup", '{"a": 1}', True], [1, "call_2", "lookup", "{bad", False]],
        }
    ]
    text = format_calls(rows)
    assert "openai/gpt-x" in text and "session=s1" in text
    assert '#0 lookup({"a": 1}) id=call_1' in text
    assert "#1 lookup({bad) id=call_2  [arguments not a JSON object]" in text
    assert format_calls([]) == "no calls recorded yet"
