"""The recorder's CPU per exchange: parse, build, validate, and (with the store) insert and session upkeep.

    python bench/recorder_cpu.py [--frames 20000] [--sink null|store|both] [--profile DIR]

It builds ``--frames`` spool frames per transport (JSON bodies, then SSE streams), each a step of an agent
session spoken in one of three wire formats (OpenAI Chat Completions, Anthropic Messages, OpenAI
Responses), as the fake upstream renders them (``toolwatch.demo``): a system prompt, four tools with JSON
Schemas, the earlier turns with their tool calls and results (2-8 KB requests), and a reply with a short
text and one or two tool calls (about one call in ten malformed). The frames go into sealed segments of a
spool directory, and the real ``Recorder`` (``recorder/loop.py``) reads them back, with the defaults of
``toolwatch serve`` (batches of 5000 rows, redacted bodies kept, the recorder process's GC threshold):

- ``null``: a sink that drops every batch: what parsing and building cost alone;
- ``store``: ``ClickHouseSink`` on a fresh embedded (chdb) store, session upkeep included: the full cost.

CPU is ``time.process_time()`` of the whole process (the embedded engine's threads included) from the first
poll to the last commit, divided by the exchanges; ``ex/s`` is exchanges per wall-clock second and
``ex/CPU-s`` exchanges per CPU second (what one core would ingest). Targets (issue 15): at most 60 µs per
JSON exchange and 100 µs per SSE exchange, and 15,000 exchanges/s into the embedded store.

``--profile DIR`` runs each case once more under cProfile and writes the top functions (by own time and
by cumulative time) to ``DIR/<case>.txt``.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import io
import os
import platform
import pstats
import shutil
import sys
import tempfile
import time
import timeit
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import overhead_roles  # bench/, beside this file

from toolwatch.demo import wire_anthropic, wire_openai, wire_responses
from toolwatch.demo.script import Ids, Received, Reply, ToolCallSpec
from toolwatch.recorder.build import BuildOptions
from toolwatch.recorder.loop import Recorder
from toolwatch.schemas.exchange import Exchange
from toolwatch.schemas.settings import Settings
from toolwatch.spool.frame import encode
from toolwatch.spool.reader import SpoolReader
from toolwatch.spool.segments import SEALED, segment_name
from toolwatch.store.handle import StoreHandle
from toolwatch.store.sink import TABLES, Batch
from toolwatch.store.writer import ClickHouseSink

GC_GEN0_THRESHOLD = 20_000  # as the recorder process sets it
FRAMES_PER_SEGMENT = 500
STEPS = 5  # steps per session: request k resends the k earlier tool turns
TARGETS = {"json": 60.0, "sse": 100.0}
START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)

_TOOLS, _SYSTEM = overhead_roles._TOOLS, overhead_roles._SYSTEM  # the bodies proxy_overhead.py sends
_TEXT = "Let me check the current conditions for you before I answer."


def _schema(params: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {p: {"type": t, "description": f"The {p}."} for p, t in params.items()},
        "required": list(params)[:1],
        "additionalProperties": False,
    }


def _arguments(n: int) -> tuple[str, str]:
    """(tool name, argument text) of the n-th call: mostly valid, some malformed in each of three ways."""
    kind = n % 20
    if kind == 7:
        return "get_weather", '{"city": "Paris", "country": "FR", "da'  # invalid JSON
    if kind == 13:
        return "get_weather", '{"city": 42, "days": "three"}'  # schema violation
    if kind == 17:
        return "get_forecast", '{"city": "Lyon"}'  # unknown tool
    if n % 3 == 0:
        return "search_docs", f'{{"query": "deploy runbook step {n}", "limit": 5}}'
    return "get_weather", f'{{"city": "Paris", "country": "FR", "unit": "celsius", "days": {1 + n % 5}}}'


def _is_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def _result(n: int) -> str:
    if n % 11 == 5:
        return "Error: the weather service timed out after 30 s"
    return (
        '{"temperature_c": 14.5, "conditions": "light rain", "wind_kph": 18, "forecast": [15, 17, 12], '
        f'"source": "meteo-bench", "request": {n}}}' + " " * (n % 7 * 40)
    )


@dataclass(frozen=True)
class Turn:
    call_id: str
    name: str
    arguments: str
    result: str


class Dialect:
    """One wire format: the request body of a step, and how the fake upstream renders the reply."""

    api = "openai"
    upstream = "openai"
    path = ""
    model = ""
    render: Callable[[Reply, Received, Ids], Any]

    def request(self, session: int, turns: list[Turn], stream: bool) -> dict[str, Any]:
        raise NotImplementedError

    def call_id(self, session: int, step: int, k: int) -> str:
        return f"call_{session:06d}{step}{k}abcdefghijklmnop"


class OpenAIChat(Dialect):
    path, model = "/v1/chat/completions", "gpt-4o-mini"
    render = staticmethod(wire_openai.render)

    def request(self, session: int, turns: list[Turn], stream: bool) -> dict[str, Any]:
        tools = [
            {"type": "function", "function": {"name": n, "description": d, "parameters": _schema(p), "strict": False}}
            for n, d, p in _TOOLS
        ]
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": _SYSTEM},
            {"role": "user", "content": f"Session {session}: what is the weather in Paris this week?"},
        ]
        for t in turns:
            call = {"id": t.call_id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
            messages += [
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": t.call_id, "content": t.result},
            ]
        body: dict[str, Any] = {"model": self.model, "messages": messages, "tools": tools, "temperature": 0.2}
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return body


class AnthropicMessages(Dialect):
    api = upstream = "anthropic"
    path, model = "/v1/messages", "claude-sonnet-4-5"
    render = staticmethod(wire_anthropic.render)

    def call_id(self, session: int, step: int, k: int) -> str:
        return f"toolu_01{session:06d}{step}{k}ABCDEFGHIJKLMN"

    def request(self, session: int, turns: list[Turn], stream: bool) -> dict[str, Any]:
        tools = [{"name": n, "description": d, "input_schema": _schema(p)} for n, d, p in _TOOLS]
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": f"Session {session}: what is the weather in Paris this week?"}
        ]
        for t in turns:
            try:
                args = orjson.loads(t.arguments)
            except orjson.JSONDecodeError:
                args = {}
            use = {"type": "tool_use", "id": t.call_id, "name": t.name, "input": args}
            messages += [
                {"role": "assistant", "content": [{"type": "text", "text": _TEXT}, use]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": t.call_id, "content": t.result}]},
            ]
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": 4096,
            "system": [{"type": "text", "text": _SYSTEM, "cache_control": {"type": "ephemeral"}}],
            "messages": messages,
            "tools": tools,
        }
        if stream:
            body["stream"] = True
        return body


class OpenAIResponses(Dialect):
    path, model = "/v1/responses", "gpt-4.1"
    render = staticmethod(wire_responses.render)

    def request(self, session: int, turns: list[Turn], stream: bool) -> dict[str, Any]:
        tools = [{"type": "function", "name": n, "description": d, "parameters": _schema(p)} for n, d, p in _TOOLS]
        items: list[dict[str, Any]] = [
            {"role": "user", "content": f"Session {session}: what is the weather in Paris this week?"}
        ]
        for t in turns:
            items += [
                {"type": "function_call", "call_id": t.call_id, "name": t.name, "arguments": t.arguments},
                {"type": "function_call_output", "call_id": t.call_id, "output": t.result},
            ]
        body: dict[str, Any] = {"model": self.model, "instructions": _SYSTEM, "input": items, "tools": tools}
        if stream:
            body["stream"] = True
        return body


DIALECTS: tuple[Dialect, ...] = (OpenAIChat(), AnthropicMessages(), OpenAIResponses())


def frames(count: int, stream: bool, dialects: tuple[Dialect, ...] = DIALECTS) -> Iterator[bytes]:
    """``count`` frames: sessions of STEPS steps, the dialects taking turns session by session."""
    ids = Ids()
    n = 0
    session = 0
    while True:
        dialect = dialects[session % len(dialects)]
        turns: list[Turn] = []
        for step in range(STEPS):
            if n >= count:
                return
            body = orjson.dumps(dialect.request(session, turns, stream))
            calls = []
            for k in range(1 + (n % 4 == 0)):  # one call in four replies carries two
                name, arguments = _arguments(n * 2 + k)
                if dialect.api == "anthropic" and not stream and not _is_json(arguments):
                    arguments = '{"city": "Paris"}'  # a JSON tool_use block can only carry a parsed object
                calls.append(ToolCallSpec(name, arguments, dialect.call_id(session, step, k)))
            reply = Reply(text=_TEXT, tool_calls=tuple(calls))
            received = Received.capture("POST", dialect.path, {"content-type": "application/json"}, body)
            rendered = dialect.render(reply, received, ids)
            response = b"".join(rendered.pieces)
            at = START + dt.timedelta(seconds=n * 0.05)
            exchange = Exchange.model_construct(
                id=uuid.UUID(int=(0x019B_0000_0000_7000_8000_0000_0000_0000 | n << 16)),
                started_at=at,
                upstream=dialect.upstream,
                api=dialect.api,
                method="POST",
                path=dialect.path,
                status=rendered.status,
                outcome="ok",
                error=None,
                latency_ms=850.0 + n % 300,
                ttfb_ms=320.0 + n % 100,
                request_content_type="application/json",
                response_content_type=rendered.headers["content-type"],
                response_content_encoding=None,
                request_size=len(body),
                response_size=len(response),
                request_truncated=False,
                response_truncated=False,
                session_id=None,
                agent="bench-agent",
                user_id=None,
                properties={"team": "ops"},
                response_headers={k: v for k, v in rendered.headers.items() if k in ("x-request-id", "request-id")},
                traceparent="",
                key_fingerprint="kf_0123456789abcdef",
            )
            yield encode(exchange, body, response)
            turns.append(Turn(calls[0].id or "", calls[0].name, calls[0].arguments, _result(n)))
            n += 1
        session += 1


def write_spool(directory: Path, data: list[bytes]) -> int:
    directory.mkdir(parents=True)
    for seq, start in enumerate(range(0, len(data), FRAMES_PER_SEGMENT), 1):
        (directory / segment_name("w0", seq, SEALED)).write_bytes(b"".join(data[start : start + FRAMES_PER_SEGMENT]))
    return sum(map(len, data))


class NullSink:
    """Takes every batch and keeps nothing: the recorder's own cost."""

    def write(self, batch: Batch) -> None:
        batch.done.update(TABLES)

    def shutdown(self) -> None:
        pass


@dataclass
class Result:
    frames: int
    cpu_s: float
    wall_s: float
    records: int
    build_errors: int

    @property
    def us_per_exchange(self) -> float:
        return self.cpu_s / self.frames * 1e6


def record(
    spool: Path, sink: Any, count: int, profile: cProfile.Profile | None = None, batch_rows: int = 5000
) -> Result:
    recorder = Recorder(SpoolReader(spool), sink, options=BuildOptions(), batch_rows=batch_rows, batch_interval=1.0)
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    if profile is not None:
        profile.enable()
    while recorder.stats.frames_read < count:
        recorder.step()
    recorder.flush()
    if profile is not None:
        profile.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    st = recorder.stats
    if st.frames_read != count or st.calls_written != count or st.write_errors:
        raise SystemExit(f"recorder did not store everything: {st}")
    return Result(count, cpu, wall, st.records_written, st.build_errors)


def reference_us() -> float:
    """A fixed piece of pure Python, timed: how fast this machine runs Python just now (other work on a
    shared machine slows it); to compare two runs, scale their figures by their references."""
    return min(timeit.repeat("sum(range(1000))", number=2000, repeat=7)) / 2000 * 1e6


def summary(profile: cProfile.Profile, title: str, lines: int = 35) -> str:
    out = io.StringIO()
    out.write(f"# {title}\n\n## by own time\n")
    pstats.Stats(profile, stream=out).strip_dirs().sort_stats("tottime").print_stats(lines)
    out.write("\n## by cumulative time\n")
    pstats.Stats(profile, stream=out).strip_dirs().sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=20_000, help="frames per transport (default 20000)")
    p.add_argument("--sink", choices=("null", "store", "both"), default="both")
    p.add_argument("--transport", choices=("json", "sse", "both"), default="both")
    p.add_argument("--profile", type=Path, default=None, help="also profile each case (cProfile) into DIR")
    p.add_argument("--rounds", type=int, default=1, help="run each case this many times; the table shows the best")
    p.add_argument("--batch-rows", type=int, default=5000, help="the recorder's batch_rows (serve's default: 5000)")
    args = p.parse_args()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)
    transports = ("json", "sse") if args.transport == "both" else (args.transport,)
    sinks = ("null", "store") if args.sink == "both" else (args.sink,)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tw-recorder-cpu-") as tmp:
        root = Path(tmp)
        store: StoreHandle | None = None
        if "store" in sinks:  # one embedded engine per process: every store case shares it
            store = StoreHandle(Settings(store=f"chdb://{root / 'store'}"))
            store.client()  # opened and migrated before any timing
        for transport in transports:
            built = time.perf_counter()
            data = list(frames(args.frames, transport == "sse"))
            size = write_spool(root / f"{transport}-data", data)
            print(
                f"{transport}: {len(data)} frames, {size / len(data) / 1024:.1f} KB each on average "
                f"(built in {time.perf_counter() - built:.1f} s)",
                file=sys.stderr,
            )
            for sink_name in sinks:
                runs: list[cProfile.Profile | None] = [None] * args.rounds + (
                    [cProfile.Profile()] if args.profile else []
                )
                best: Result | None = None
                for run, profile in enumerate(runs):
                    spool = root / f"{transport}-{sink_name}-{run}"
                    write_spool(spool, data)
                    sink = NullSink() if sink_name == "null" else ClickHouseSink(store)  # type: ignore[arg-type]
                    result = record(spool, sink, len(data), profile, args.batch_rows)
                    shutil.rmtree(spool)
                    if profile is None:
                        best = result if best is None or result.cpu_s < best.cpu_s else best
                        if run == args.rounds - 1:
                            rows.append((transport, sink_name, best))
                    else:
                        args.profile.mkdir(parents=True, exist_ok=True)
                        title = f"recorder, {transport} exchanges, {sink_name} sink, {len(data)} frames (cProfile)"
                        (args.profile / f"{transport}-{sink_name}.txt").write_text(summary(profile, title))
        if store is not None:
            store.close()
    print(
        f"\nrecorder CPU per exchange ({platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, {args.frames} frames per transport, "
        f"batch_rows {args.batch_rows}, best of {args.rounds}; "
        f"reference: sum(range(1000)) took {reference_us():.1f} µs)\n"
    )
    print("| transport | sink | µs CPU/exchange | target | ex/s (wall) | ex/CPU-s | records |")
    print("|---|---|---|---|---|---|---|")
    for transport, sink_name, r in rows:
        target = f"≤ {TARGETS[transport]:.0f}"
        print(
            f"| {transport} | {sink_name} | {r.us_per_exchange:.0f} | {target} | {r.frames / r.wall_s:,.0f} "
            f"| {r.frames / r.cpu_s:,.0f} | {r.records} |"
        )


if __name__ == "__main__":
    main()
