"""A mix of agent sessions as spool frames (Chat Completions wire format), for comparing the session rows kept
at ingest with the query-time figures: several steps, several models (ties included), malformed calls, tool
errors, an upstream failure retried byte for byte, a failed first turn retried, loops, results that arrive
late, sessions left waiting, header session ids. A Hypothesis strategy draws the mix.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from toolwatch.schemas.exchange import Exchange
from toolwatch.spool.frame import encode

TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
MODELS = ("model-a", "model-b", "model-c")
STEP_KINDS = ("ok", "malformed", "tool_error", "retried_500", "loop")


@dataclass(frozen=True)
class Step:
    kind: str  # one of STEP_KINDS
    model: str
    gap_s: float  # seconds since the previous step


@dataclass(frozen=True)
class SessionSpec:
    start_s: float  # seconds after the mix's start
    steps: tuple[Step, ...]
    header: bool  # a Toolwatch-Session-Id header on every call
    final: bool  # ends with a final answer (else it waits for tool results)
    failed_first_turn: bool  # the first request got a 500 and was sent again


def sessions() -> st.SearchStrategy[list[SessionSpec]]:
    step = st.builds(
        Step,
        kind=st.sampled_from(STEP_KINDS),
        model=st.sampled_from(MODELS),
        gap_s=st.sampled_from((1.0, 5.0, 30.0, 700.0)),  # 700 s: a result more than 10 minutes late
    )
    spec = st.builds(
        SessionSpec,
        start_s=st.floats(0, 3 * 3600, allow_nan=False).map(lambda s: round(s, 3)),
        steps=st.lists(step, min_size=1, max_size=6).map(tuple),
        header=st.booleans(),
        final=st.booleans(),
        failed_first_turn=st.booleans(),
    )
    return st.lists(spec, min_size=8, max_size=24)


class Builder:
    def __init__(self, start: dt.datetime) -> None:
        self.start = start
        self.ids = itertools.count(1)
        self.frames: list[tuple[dt.datetime, bytes]] = []

    def exchange(self, at: dt.datetime, status: int, session: str) -> Exchange:
        n = next(self.ids)
        return Exchange(
            id=uuid.UUID(int=(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)),
            started_at=at,
            upstream="openai",
            api="openai",
            method="POST",
            path="/v1/chat/completions",
            status=status,
            outcome="ok" if status < 400 else "http_error",
            latency_ms=100.0 + n % 50,
            ttfb_ms=40.0,
            request_content_type="application/json",
            response_content_type="application/json",
            session_id=session or None,
            agent="mix-agent",
        )

    def add(self, at: dt.datetime, request: dict[str, Any], status: int, answer: Any, session: str) -> None:
        body = json.dumps(answer).encode()
        self.frames.append((at, encode(self.exchange(at, status, session), json.dumps(request).encode(), body)))

    def session(self, index: int, spec: SessionSpec) -> None:
        session = f"mix-{index}" if spec.header else ""
        at = self.start + dt.timedelta(seconds=spec.start_s)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You look things up."},
            {"role": "user", "content": f"task {index}"},
        ]
        if spec.failed_first_turn:
            request = {"model": spec.steps[0].model, "messages": messages, "tools": TOOLS}
            self.add(at, request, 500, {"error": {"message": "boom", "type": "server_error"}}, session)
            at += dt.timedelta(seconds=2)
        for k, step in enumerate(spec.steps):
            if k:
                at += dt.timedelta(seconds=step.gap_s)
            request = {"model": step.model, "messages": list(messages), "tools": TOOLS}
            if step.kind == "retried_500":
                self.add(at, request, 500, {"error": {"message": "overloaded", "type": "server_error"}}, session)
                at += dt.timedelta(seconds=1)
            last = k == len(spec.steps) - 1
            if last and spec.final:
                self.add(at, request, 200, answer(step.model, None, next(self.ids)), session)
                return
            n = next(self.ids)
            arguments = {"malformed": '{"key": ', "loop": '{"key": "same"}'}.get(step.kind, f'{{"key": "k{n}"}}')
            call = {"id": f"call_{n}", "type": "function", "function": {"name": "lookup", "arguments": arguments}}
            self.add(at, request, 200, answer(step.model, call, n), session)
            if last:
                return  # left waiting for its tool result
            content = "Error: backend unavailable" if step.kind == "tool_error" else f"value {n}"
            messages += [
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call["id"], "content": content},
            ]

    def ordered(self) -> list[bytes]:
        return [frame for _, frame in sorted(self.frames, key=lambda f: f[0])]


def answer(model: str, call: dict[str, Any] | None, n: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "Done." if call is None else None}
    if call is not None:
        message["tool_calls"] = [call]
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop" if call is None else "tool_calls"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
    }


def frames_of(specs: list[SessionSpec], start: dt.datetime) -> list[bytes]:
    builder = Builder(start)
    for i, spec in enumerate(specs):
        builder.session(i, spec)
    return builder.ordered()
