"""Session inference does not depend on arrival order: the golden frames, fed to the recorder in other
orders (reversed, both orders of a Gemini session's parallel calls and their results, and random
permutations from Hypothesis), give exactly the sessions and report they give in order; so does a
Responses API chain linked only by ``previous_response_id``, replayed backwards with the recorder's memory
cleared before every frame.

Regressions: header-less traffic split a streamed Gemini session with parallel function calls into two
sessions when the request carrying the function responses reached the recorder before the response that
emitted the calls; a four-call Responses chain replayed cold and backwards became three sessions.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.golden.test_golden import FRAMES, sessions_of, split_frames
from toolwatch.schemas.exchange import Exchange
from toolwatch.spool.frame import encode

ALL = split_frames(FRAMES.read_bytes())


def in_order_of(store_path: Path, tmp_path: Path, frames: list[bytes], warm: bool = True) -> dict[str, Any]:
    """Sessions and report of ``frames`` replayed in the given order."""
    return sessions_of(store_path, tmp_path, frames, warm=warm, timelines=False)


@pytest.fixture(scope="module")
def expected(store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return in_order_of(store_path, tmp_path_factory.mktemp("in-order"), ALL)


def test_reversed_order_gives_the_same_sessions(store_path: Path, tmp_path: Path, expected: dict[str, Any]) -> None:
    assert len(expected["sessions"]) >= 12
    assert in_order_of(store_path, tmp_path, ALL[::-1]) == expected


def test_a_gemini_session_in_both_orders(store_path: Path, tmp_path: Path, expected: dict[str, Any]) -> None:
    gemini = [f for f in ALL if b'"upstream":"gemini"' in f[:600]]
    assert len(gemini) == 6
    others = [f for f in ALL if f not in gemini]
    for n, order in enumerate(itertools.permutations(gemini[2:4])):  # the SSE session: calls, then results
        assert in_order_of(store_path, tmp_path / str(n), others + list(order) + gemini[:2] + gemini[4:]) == expected


@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(len(ALL))))
def test_random_orders_give_the_same_sessions(
    store_path: Path, tmp_path_factory: pytest.TempPathFactory, expected: dict[str, Any], order: list[int]
) -> None:
    got = in_order_of(store_path, tmp_path_factory.mktemp("shuffled"), [ALL[i] for i in order])
    assert got == expected


def responses_chain(length: int) -> list[bytes]:
    """``length`` Responses API calls, each continuing the last by ``previous_response_id`` only."""
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    start = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
    frames, previous = [], None
    for i in range(length):
        body: dict[str, Any] = {"model": "gpt-4.1", "tools": tools, "input": "find the order"}
        if previous is not None:
            body["previous_response_id"] = previous
            body["input"] = [{"type": "function_call_output", "call_id": f"call_{i - 1}", "output": "found"}]
        previous = f"resp_{i:04d}"
        last = i == length - 1
        item = (
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "done"}]}
            if last
            else {"type": "function_call", "call_id": f"call_{i}", "name": "lookup", "arguments": "{}"}
        )
        answer = {"id": previous, "object": "response", "status": "completed", "model": "gpt-4.1", "output": [item]}
        exchange = Exchange(
            id=uuid.UUID(int=(0x0190_0000_0000_7000_8000_0000_0000_0000 | i)),
            started_at=start + dt.timedelta(seconds=10 * i),
            upstream="openai",
            api="openai",
            method="POST",
            path="/v1/responses",
            status=200,
            latency_ms=200.0,
            request_content_type="application/json",
            response_content_type="application/json",
        )
        frames.append(encode(exchange, json.dumps(body).encode(), json.dumps(answer).encode()))
    return frames


def test_a_responses_chain_backwards_and_cold_is_one_session(store_path: Path, tmp_path: Path) -> None:
    chain = responses_chain(5)
    warm = in_order_of(store_path, tmp_path / "warm", chain)
    assert [s["steps"] for s in warm["sessions"]] == [5]
    assert in_order_of(store_path, tmp_path / "cold", chain[::-1], warm=False) == warm
