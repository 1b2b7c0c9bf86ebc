"""The recorder's memory: bounded, least recently used first out, and the two links it resolves."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from toolwatch.recorder.links import Links, Lru
from toolwatch.schemas.records import LlmCall, ToolCall, ToolResult

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_lru_forgets_the_least_recently_used() -> None:
    lru: Lru[str, int] = Lru(2)
    lru.put("a", 1)
    lru.put("b", 2)
    lru.put("a", 3)  # used again: now the most recent
    lru.put("c", 4)  # evicts b
    assert dict(lru) == {"a": 3, "c": 4}
    lru.put("b", 5)  # evicts a
    assert list(lru) == ["c", "b"]


def test_lru_keeps_up_to_capacity() -> None:
    lru: Lru[int, None] = Lru(100)
    for i in range(100):
        lru.put(i, None)
    assert len(lru) == 100 and 0 in lru
    lru.put(100, None)
    assert len(lru) == 100 and 0 not in lru


def call(n: int, **over: Any) -> LlmCall:
    fields: dict[str, Any] = {
        "call_id": uuid.UUID(int=n),
        "ts": T0,
        "upstream": "openai",
        "api": "openai",
        "endpoint": "chat_completions",
        "method": "POST",
        "path": "/v1/chat/completions",
        "model": "m",
        "conv_key": f"key{n}",
        **over,
    }
    return LlmCall(**fields)


def tool_call(n: int, tool_call_id: str) -> ToolCall:
    return ToolCall(
        tool_call_uid=uuid.uuid4(),
        call_id=uuid.UUID(int=n),
        ts=T0,
        upstream="openai",
        model="m",
        call_index=0,
        tool_call_id=tool_call_id,
        name="f",
        raw_arguments="{}",
    )


def result(tool_call_id: str) -> ToolResult:
    return ToolResult(
        result_uid=uuid.uuid4(),
        call_id=uuid.UUID(int=9),
        ts=T0,
        upstream="openai",
        tool_call_id=tool_call_id,
        content="ok",
        content_bytes=2,
    )


def test_links_resolve_the_producer_and_the_session() -> None:
    links = Links()
    links.remember(call(1, response_id="resp_1"), [tool_call(1, "call_a")], [])
    assert links.producer_of("openai", "call_a") == uuid.UUID(int=1)
    assert links.producer_of("azure", "call_a") is None  # ids are per upstream
    assert links.session_of("openai", "", "call_a") == "key1"
    assert links.session_of("openai", "resp_1", "") == "key1"
    assert links.session_of("openai", "resp_x", "call_x") == ""
    # a call linked to an earlier one passes that session on, not its own key
    links.remember(call(2, link_key="key1"), [tool_call(2, "call_b")], [])
    assert links.session_of("openai", "", "call_b") == "key1"


def test_links_remember_stored_results_and_keep_resent_ones_fresh() -> None:
    links = Links(results_capacity=2)
    links.remember(call(1), [], [result("a"), result("b")])
    assert links.stored(("openai", "a")) and links.stored(("openai", "b"))
    links.remember(call(2), [], [], resent=[("openai", "a")])  # a is now the most recent
    links.remember(call(3), [], [result("c")])  # evicts b
    assert links.stored(("openai", "a")) and not links.stored(("openai", "b"))


def test_links_warm_from_the_store() -> None:
    asked: list[str] = []

    def query(sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        asked.append(sql)
        if "FROM tool_results" in sql:
            return [("openai", "done")]
        return [("openai", "call_new", uuid.UUID(int=7), "k7"), ("openai", "call_old", uuid.UUID(int=6), "k6")]

    links = Links()
    links.warm(query)
    assert len(asked) == 2
    assert links.stored(("openai", "done"))
    assert links.producer_of("openai", "call_old") == uuid.UUID(int=6)
    assert links.session_of("openai", "", "call_new") == "k7"
    assert list(links.calls)[-1] == ("openai", "call_new")  # the newest is the most recent
