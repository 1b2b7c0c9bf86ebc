"""Synthetic agent traffic for the alert tests: spool frames of two-step Chat Completions sessions at chosen
times, replayed through the real recorder into the store (so session inference, indicators and switch
detection all run on real records).

A session: the model calls ``lookup`` (with invalid JSON arguments when ``malformed``), the agent sends the
result (an error text when ``tool_error``), and the model answers. ``open_ended`` leaves out the answer.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolwatch.recorder.build import BuildOptions
from toolwatch.recorder.loop import Recorder
from toolwatch.schemas.exchange import Exchange
from toolwatch.spool.frame import encode
from toolwatch.spool.reader import SpoolReader
from toolwatch.store.handle import StoreHandle
from toolwatch.store.writer import ClickHouseSink

TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
_ids = itertools.count(1)


@dataclass(frozen=True)
class Session:
    start: dt.datetime
    model: str
    agent: str = "bot"
    malformed: bool = False
    tool_error: bool = False
    returned: str | None = None  # the model the upstream says answered (default: the requested one)
    open_ended: bool = False


def _exchange(at: dt.datetime, agent: str) -> Exchange:
    n = next(_ids)
    return Exchange(
        id=uuid.UUID(int=(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)),
        started_at=at,
        upstream="openai",
        api="openai",
        method="POST",
        path="/v1/chat/completions",
        status=200,
        latency_ms=120.0,
        ttfb_ms=80.0,
        request_content_type="application/json",
        response_content_type="application/json",
        agent=agent,
    )


def _answer(model: str, message: dict[str, Any], finish: str) -> bytes:
    body = {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    return json.dumps(body).encode()


def session_frames(s: Session) -> list[bytes]:
    n = next(_ids)
    call_id = f"call_{n:08d}"
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You look things up."},
        {"role": "user", "content": f"task {n}"},
    ]
    arguments = '{"key": ' if s.malformed else '{"key": "k"}'
    call = {"id": call_id, "type": "function", "function": {"name": "lookup", "arguments": arguments}}
    assistant = {"role": "assistant", "content": None, "tool_calls": [call]}
    returned = s.returned or s.model
    request = {"model": s.model, "messages": messages, "tools": TOOLS}
    frames = [
        encode(_exchange(s.start, s.agent), json.dumps(request).encode(), _answer(returned, assistant, "tool_calls"))
    ]
    if s.open_ended:
        return frames
    result = "Error: backend unavailable" if s.tool_error else "found it"
    request = {
        "model": s.model,
        "messages": [*messages, assistant, {"role": "tool", "tool_call_id": call_id, "content": result}],
        "tools": TOOLS,
    }
    final = {"role": "assistant", "content": "Here it is."}
    at = s.start + dt.timedelta(seconds=5)
    frames.append(encode(_exchange(at, s.agent), json.dumps(request).encode(), _answer(returned, final, "stop")))
    return frames


def spaced(start: dt.datetime, count: int, every: dt.timedelta, model: str, hits: int = 0, **kw: Any) -> list[Session]:
    """``count`` sessions ``every`` apart, ``hits`` of them (spread evenly) malformed."""
    marked = {(k * count) // hits for k in range(hits)} if hits else set()
    return [Session(start + i * every, model, malformed=i in marked, **kw) for i in range(count)]


def record(store: StoreHandle, spool: Path, sessions: list[Session]) -> None:
    """Write the sessions' frames to a fresh spool folder and replay them into the store."""
    frames = [f for s in sessions for f in session_frames(s)]
    spool.mkdir(parents=True, exist_ok=True)
    segment = spool / f"w0-{next(_ids):012d}.seg"
    segment.write_bytes(b"".join(frames))
    recorder = Recorder(
        SpoolReader(spool), ClickHouseSink(store), options=BuildOptions(), batch_rows=100_000, batch_interval=3600
    )
    while recorder.step():
        pass
    recorder.flush()
    segment.unlink(missing_ok=True)  # the recorder deletes a segment once stored
