"""The three helper processes of ``proxy_overhead.py``: fake upstream, bare passthrough, load generator.

Run as ``python bench/overhead_roles.py upstream|bare URL|load``. Each role runs on uvloop in its own
process, so none of them shares a GIL or an event loop with what it measures. A server role prints one
JSON line ``{"url": ...}`` when it listens and exits when its standard input closes (so it cannot
outlive the benchmark). The load role reads one JSON command per line and answers one JSON line each.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/...` from anywhere: tests.fakes

from tests.fakes.upstreams import FakeUpstream, Reply, ToolCallSpec  # noqa: E402

# The model answers every request with a short text and one tool call, as in an agent loop.
REPLY = Reply(
    text="Let me check the current conditions for you.",
    tool_calls=(ToolCallSpec("get_weather", '{"city": "Paris", "country": "FR", "unit": "celsius", "days": 3}'),),
)


def _say(obj: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
    sys.stdout.buffer.flush()


async def _until_stdin_closes() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)


# -- fake upstream ---------------------------------------------------------------------------------
async def upstream() -> None:
    async with FakeUpstream(default=REPLY, record=False) as fake:
        _say({"url": fake.url})
        await _until_stdin_closes()


# -- bare passthrough ------------------------------------------------------------------------------
# What any HTTP proxy must drop: hop-by-hop fields, and lengths the client library sets again.
_DROP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}
)
SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


def _copy(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in _DROP)


async def _passthrough(request: web.Request) -> web.StreamResponse:
    """Read, forward, return: the least a proxy can do."""
    body = await request.read()
    url = request.app[UPSTREAM] + request.raw_path
    async with request.app[SESSION].request(
        request.method, url, headers=_copy(request.headers), data=body, allow_redirects=False
    ) as up:
        headers = _copy(up.headers)
        if up.content_type == "text/event-stream":
            resp = web.StreamResponse(status=up.status, reason=up.reason, headers=headers)
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp
        data = await up.read()
        return web.Response(status=up.status, reason=up.reason, headers=headers, body=data)


async def bare(upstream_url: str) -> None:
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app[UPSTREAM] = upstream_url.rstrip("/")

    async def session_ctx(app: web.Application) -> Any:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60.0)
        async with aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
        ) as session:
            app[SESSION] = session
            yield

    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", _passthrough)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    _say({"url": f"http://127.0.0.1:{runner.addresses[0][1]}"})
    try:
        await _until_stdin_closes()
    finally:
        await runner.cleanup()


# -- load generator --------------------------------------------------------------------------------
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json",
    "Authorization": "Bearer sk-bench-0000000000000000000000000000000000000000",
    "User-Agent": "AsyncOpenAI/Python 1.99.0",
    "X-Stainless-Lang": "python",
    "X-Stainless-Package-Version": "1.99.0",
    "X-Stainless-Runtime": "CPython",
    "X-Stainless-Async": "async:asyncio",
}
_TOOLS = [
    (
        "get_weather",
        "Current weather and a forecast for a city.",
        {"city": "string", "country": "string", "unit": "string", "days": "integer"},
    ),
    ("search_docs", "Full-text search over the team's documentation.", {"query": "string", "limit": "integer"}),
    (
        "create_ticket",
        "Open a ticket in the issue tracker.",
        {"title": "string", "body": "string", "priority": "string"},
    ),
    ("run_sql", "Run a read-only SQL query on the analytics warehouse.", {"sql": "string"}),
]
_SYSTEM = (
    "You are a careful operations assistant for an engineering team. Use the tools when a question needs "
    "fresh data; never invent figures. Answer concisely, cite the tool results you used, and ask for "
    "clarification when a request is ambiguous. "
) * 3


def bodies(stream: bool, variants: int = 16) -> list[bytes]:
    """Chat-completions request bodies of 2-5 KB: a system prompt, tools, and 1-3 earlier tool turns."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": desc,
                "parameters": {
                    "type": "object",
                    "properties": {p: {"type": t, "description": f"The {p}."} for p, t in params.items()},
                    "required": list(params)[:1],
                    "additionalProperties": False,
                },
                "strict": False,
            },
        }
        for name, desc, params in _TOOLS
    ]
    out = []
    for v in range(variants):
        messages: list[dict[str, Any]] = [{"role": "system", "content": _SYSTEM}]
        for turn in range(1 + v % 3):
            messages.append({"role": "user", "content": f"Request {v}.{turn}: what is the weather in Paris?"})
            call_id = f"call_{v:03d}{turn}abcdefghijklmnop"
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": '{"city": "Paris", "country": "FR", "days": 3}',
                            },
                        }
                    ],
                }
            )
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call_id,
                    "content": '{"temperature_c": 14.5, "conditions": "light rain", "wind_kph": 18, '
                    '"forecast": [15, 17, 12], "source": "meteo-bench"}' + " " * (v * 20),
                }
            )
        messages.append({"role": "user", "content": "And tomorrow? Please check again."})
        body: dict[str, Any] = {
            "model": "gpt-4o-mini",
            "messages": messages,
            "tools": tools,
            "tool_choice": "auto",
            "temperature": 0.2,
        }
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        out.append(orjson.dumps(body))
    return out


def _check(stream: bool) -> Callable[[int, bytes], bool]:
    if stream:
        return lambda status, data: status == 200 and data.endswith(b"data: [DONE]\n\n")
    return lambda status, data: status == 200 and b'"tool_calls":[{' in data


async def _run(session: aiohttp.ClientSession, cmd: dict[str, Any], payloads: list[bytes]) -> dict[str, Any]:
    """Send ``n`` requests from ``concurrency`` workers; latency is until the whole body was read."""
    n, stream = int(cmd["n"]), bool(cmd["stream"])
    ok = _check(stream)
    latencies = [0.0] * n
    errors: list[str] = []
    issued = 0

    async def worker() -> None:
        nonlocal issued
        while issued < n:
            i = issued
            issued += 1
            t0 = time.perf_counter()
            try:
                body = payloads[i % len(payloads)]
                async with session.post(cmd["url"], data=body, headers=HEADERS) as resp:
                    if stream:
                        data = b"".join([chunk async for chunk in resp.content.iter_any()])
                    else:
                        data = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as e:
                status, data = 0, repr(e).encode()
            latencies[i] = time.perf_counter() - t0
            if not ok(status, data):
                errors.append(f"{status}: {data[:200]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(int(cmd["concurrency"]))))
    wall = time.perf_counter() - started
    return {"latencies": latencies, "wall": wall, "errors": len(errors), "first_error": errors[:1]}


async def load() -> None:
    loop = asyncio.get_running_loop()
    payloads = {False: bodies(False), True: bodies(True)}
    sessions: dict[str, aiohttp.ClientSession] = {}
    _say({"ready": True, "body_sizes": sorted({len(b) for b in payloads[False]})})
    try:
        while line := await loop.run_in_executor(None, sys.stdin.buffer.readline):
            cmd = orjson.loads(line)
            session = sessions.get(cmd["url"])
            if session is None:
                session = sessions[cmd["url"]] = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60.0),
                    timeout=aiohttp.ClientTimeout(total=60.0),
                )
            _say(await _run(session, cmd, payloads[bool(cmd["stream"])]))
    finally:
        for session in sessions.values():
            await session.close()


def main() -> None:
    role = sys.argv[1]
    if role == "upstream":
        uvloop.run(upstream())
    elif role == "bare":
        uvloop.run(bare(sys.argv[2]))
    elif role == "load":
        uvloop.run(load())
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main()
