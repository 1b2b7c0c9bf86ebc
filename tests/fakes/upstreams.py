"""A scriptable fake LLM API server for tests and benchmarks.

`FakeUpstream` listens on 127.0.0.1 (a free port) and answers, under any path
prefix:

- `POST .../chat/completions`: OpenAI Chat Completions (`wire_openai`)
- `POST .../messages`: Anthropic Messages (`wire_anthropic`)
- `POST .../responses`: OpenAI Responses (`wire_responses`)
- `POST .../models/{model}:generateContent` and `:streamGenerateContent`
  (with `?alt=sse` an SSE stream, without it a JSON array): Gemini (`wire_gemini`)
- `POST .../models/{model}:countTokens`: `{"totalTokens": n}`
- `POST .../messages/count_tokens`: `{"input_tokens": n}`
- `GET .../models`: a models list, Anthropic-shaped when the request has an
  `anthropic-version` header, Gemini-shaped with an `x-goog-api-key` header
  or a `key` query parameter, OpenAI-shaped otherwise
- anything else: a small JSON echo of method, path and body length

Only the completion endpoints consume scripted replies; every request is
recorded in `received`. A stream is sent when the request body has
`"stream": true` (Gemini: when the path says `:streamGenerateContent`). Usage::

    async with FakeUpstream([Reply(tool_calls=(ToolCallSpec("f", '{"a": 1}'),))]) as fake:
        client = openai.AsyncOpenAI(base_url=fake.url + "/v1", api_key="sk-test")
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable, Iterator
from types import TracebackType

from aiohttp import web

from toolwatch.demo import wire_anthropic, wire_gemini, wire_openai, wire_responses
from toolwatch.demo.rendered import Rendered
from toolwatch.demo.script import (
    Ids,
    Received,
    Reply,
    ReplyFunction,
    ToolCallSpec,
    ToolResult,
    Usage,
    by_turn,
    default_usage,
    dumps,
)

__all__ = [
    "FakeUpstream",
    "Received",
    "Reply",
    "ReplyFunction",
    "ToolCallSpec",
    "ToolResult",
    "Usage",
    "by_turn",
    "default_usage",
]

DEFAULT_REPLY = Reply(text="Hello from the fake upstream.")


class FakeUpstream:
    """Serves scripted OpenAI, Anthropic and Gemini answers until closed.

    `replies` is either a list consumed in order (then `default` is answered
    once it is empty; `push` adds more), or a function of the request
    (`by_turn` builds one for agent loops). Closing releases requests that
    hang: their connections are aborted. `record=False` keeps `received`
    empty, for benchmarks that send more requests than memory should hold.
    """

    def __init__(
        self,
        replies: Iterable[Reply] | ReplyFunction | None = None,
        *,
        default: Reply = DEFAULT_REPLY,
        record: bool = True,
    ) -> None:
        self._function: ReplyFunction | None = None
        self._queue: deque[Reply] = deque()
        self.script(replies or ())
        self.default = default
        self.record = record
        self.received: list[Received] = []
        self._ids = Ids()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = asyncio.Event()

    # lifetime

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("FakeUpstream already started")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Handlers end promptly once `_closing` is set; the timeout only bounds a stuck one.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(runner.addresses[0][1])
        self._runner = runner

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeUpstream not started")
        return self._port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, without a trailing slash or path."""
        return f"http://127.0.0.1:{self.port}"

    # scripting

    def script(self, replies: Iterable[Reply] | ReplyFunction) -> None:
        """Replace the script: a queue of replies, or a function of the request."""
        if callable(replies):
            self._function, self._queue = replies, deque()
        else:
            self._function, self._queue = None, deque(replies)

    def push(self, *replies: Reply) -> None:
        """Queue more replies (only for a queue-scripted server)."""
        if self._function is not None:
            raise RuntimeError("this FakeUpstream answers with a function, not a queue")
        self._queue.extend(replies)

    def _next_reply(self, received: Received) -> Reply:
        if self._function is not None:
            return self._function(received)
        return self._queue.popleft() if self._queue else self.default

    # serving

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        received = Received.capture(request.method, request.raw_path, request.headers, body)
        if self.record:
            self.received.append(received)
        path = request.path.rstrip("/")
        if request.method == "POST" and path.endswith("/chat/completions"):
            wire = wire_openai.render
        elif request.method == "POST" and path.endswith("/messages"):
            wire = wire_anthropic.render
        elif request.method == "POST" and path.endswith("/responses"):
            wire = wire_responses.render
        elif request.method == "POST" and path.endswith((":generateContent", ":streamGenerateContent")):
            wire = wire_gemini.render
        else:
            return web.Response(body=_other(request, received), content_type="application/json")
        reply = self._next_reply(received)
        rendered = wire(reply, received, self._ids)
        return await self._send(request, reply, rendered)

    async def _send(self, request: web.Request, reply: Reply, rendered: Rendered) -> web.StreamResponse:
        if reply.hang:
            await self._closing.wait()
            return _abort(request)
        response = web.StreamResponse(status=rendered.status, headers=rendered.headers)
        if not rendered.stream:
            response.content_length = sum(len(p) for p in rendered.pieces)
        await response.prepare(request)
        limit = reply.hang_after_bytes if reply.hang_after_bytes is not None else reply.drop_after_bytes
        sent = 0
        for piece in _rechunk(rendered.pieces, reply.chunk_size):
            if limit is not None and sent + len(piece) >= limit:
                await response.write(piece[: limit - sent])
                if reply.hang_after_bytes is not None:
                    await self._closing.wait()
                return _abort(request, response)
            await response.write(piece)
            sent += len(piece)
            if reply.chunk_delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), reply.chunk_delay)
            if self._closing.is_set():
                return _abort(request, response)
        if limit is not None:
            # The limit is past the end of the body: everything is sent, the ending is not.
            if reply.hang_after_bytes is not None:
                await self._closing.wait()
            return _abort(request, response)
        await response.write_eof()
        return response


def _rechunk(pieces: list[bytes], size: int | None) -> Iterator[bytes]:
    if size is None:
        yield from (p for p in pieces if p)
        return
    data = b"".join(pieces)
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _abort(request: web.Request, response: web.StreamResponse | None = None) -> web.StreamResponse:
    """Close the connection without finishing the response."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return response if response is not None else web.Response(status=499)


def _other(request: web.Request, received: Received) -> bytes:
    path = request.path.rstrip("/")
    if request.method == "GET" and path.endswith("/models"):
        if "anthropic-version" in request.headers:
            return dumps(
                {
                    "data": [
                        {
                            "type": "model",
                            "id": "claude-sonnet-4-5",
                            "display_name": "Claude Sonnet 4.5",
                            "created_at": "2025-09-29T00:00:00Z",
                        }
                    ],
                    "has_more": False,
                    "first_id": "claude-sonnet-4-5",
                    "last_id": "claude-sonnet-4-5",
                }
            )
        if "x-goog-api-key" in request.headers or "key" in request.query:
            names = ["gemini-2.5-flash", "gemini-2.5-pro"]
            return dumps({"models": [{"name": f"models/{m}", "displayName": m} for m in names]})
        models = ["gpt-4o-mini", "gpt-4o"]
        return dumps(
            {
                "object": "list",
                "data": [{"id": m, "object": "model", "created": 1715367049, "owned_by": "system"} for m in models],
            }
        )
    if request.method == "POST" and path.endswith(":countTokens"):
        return dumps({"totalTokens": max(1, len(received.body) // 4)})
    if request.method == "POST" and path.endswith("/messages/count_tokens"):
        return dumps({"input_tokens": max(1, len(received.body) // 4)})
    return dumps({"method": request.method, "path": request.path_qs, "body_length": len(received.body)})
