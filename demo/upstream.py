"""The demo's scripted upstream: one aiohttp server on 127.0.0.1 that answers as OpenAI, Anthropic and Gemini.

Paths are recognised by their ending, under any prefix (toolwatch forwards `/openai/v1/...` as `/v1/...`, a
named upstream with its own base path keeps it):

- `POST .../chat/completions`: OpenAI Chat Completions, JSON or SSE (`"stream": true`); also what the
  OpenAI-compatible `glm-4.5` answers on
- `POST .../messages`: Anthropic Messages, JSON or SSE
- `POST .../models/{model}:generateContent` and `:streamGenerateContent` (`?alt=sse`, or a JSON array)
- `GET .../models`: a models list; anything else: 404 in the OpenAI error shape

The reply to a conversation comes from `ScriptedModel` with the profile of the model asked for. The server adds
what real APIs add around it: a time to answer drawn from the profile (times `latency`; 0 answers at once),
streams whose events are spread over that time, and now and then a refused first attempt (429, 500, 503 or
529, the provider's error body) that the agent's retry gets past.

    async with DemoUpstream(seed=7) as up:
        env = up.toolwatch_env()  # TOOLWATCH_UPSTREAM_*_URL pointing at up.url, for `toolwatch serve`
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections import OrderedDict
from random import Random
from types import TracebackType

from aiohttp import web

from toolwatch.demo import wire_anthropic, wire_gemini, wire_openai
from toolwatch.demo.conversation import Api, read
from toolwatch.demo.model import ScriptedModel
from toolwatch.demo.profiles import PROFILES, Profile, profile_for
from toolwatch.demo.rendered import Rendered
from toolwatch.demo.script import Ids, Received, Reply

GLM_PATH = "/api/paas/v4"  # Z.ai's OpenAI-compatible base path, kept so the named upstream has a prefix
_ERROR_TEXT = {
    429: "Rate limit reached for requests. Please try again in 1s.",
    500: "The server had an error while processing your request.",
    503: "The model is overloaded. Please try again later.",
    529: "Overloaded",
}


class DemoUpstream:
    """Serves the scripted models until closed. `url` is `http://127.0.0.1:PORT` (no trailing slash)."""

    def __init__(self, *, seed: int = 7, latency: float = 1.0, host: str = "127.0.0.1", port: int = 0) -> None:
        if latency < 0:
            raise ValueError("latency must be >= 0")
        self.seed = seed
        self.latency = latency
        self.requests = 0
        self._host, self._port = host, port
        self._model = ScriptedModel(seed, salt=secrets.token_hex(3))
        self._ids = Ids()
        self._attempts: OrderedDict[bytes, int] = OrderedDict()  # body digest -> times asked (bounded)
        self._runner: web.AppRunner | None = None
        self._url = ""

    async def start(self) -> DemoUpstream:
        if self._runner is not None:
            raise RuntimeError("DemoUpstream already started")
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, self._host, self._port).start()
        self._runner = runner
        self._url = f"http://{self._host}:{runner.addresses[0][1]}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DemoUpstream:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        if not self._url:
            raise RuntimeError("DemoUpstream not started")
        return self._url

    def toolwatch_env(self) -> dict[str, str]:
        """Environment for `toolwatch serve`: the built-in upstreams and a named `glm` one, all pointing here."""
        return {
            "TOOLWATCH_UPSTREAM_OPENAI_URL": self.url,
            "TOOLWATCH_UPSTREAM_ANTHROPIC_URL": self.url,
            "TOOLWATCH_UPSTREAM_GEMINI_URL": self.url,
            "TOOLWATCH_UPSTREAM_GLM_URL": self.url + GLM_PATH,
            "TOOLWATCH_UPSTREAM_GLM_API": "openai",
        }

    # serving

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        received = Received.capture(request.method, request.raw_path, request.headers, body)
        path = request.path.rstrip("/")
        api: Api
        if request.method == "POST" and path.endswith("/chat/completions"):
            api, model = "openai", received.model
        elif request.method == "POST" and path.endswith("/messages"):
            api, model = "anthropic", received.model
        elif request.method == "POST" and path.endswith((":generateContent", ":streamGenerateContent")):
            api, model = "gemini", wire_gemini.model_of(request.path)
        elif request.method == "GET" and path.endswith("/models"):
            return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in PROFILES]})
        else:
            error = {"message": f"no such endpoint: {request.method} {path}", "type": "invalid_request_error"}
            return web.json_response({"error": error}, status=404)
        self.requests += 1
        profile = profile_for(model or "")
        view = read(api, received, model or "")
        # Seeded by what was said, not by ids or timing: the same workload meets the same refusals.
        rng = Random(f"{self.seed}|upstream|{profile.model}|{view.fingerprint()}")
        if self._attempt(body) == 1 and rng.random() < profile.overload:
            status = profile.overload_status
            reply = Reply(status=status, error_message=_ERROR_TEXT.get(status))
        else:
            reply = self._model.answer(profile, view)
        rendered = _RENDER[api](reply, received, self._ids)
        return await self._send(request, rendered, self._delay(profile, rng))

    def _attempt(self, body: bytes) -> int:
        """How many times this exact request has been asked, this one included."""
        digest = hashlib.sha256(body).digest()
        n = self._attempts.pop(digest, 0) + 1
        self._attempts[digest] = n
        if len(self._attempts) > 10_000:
            self._attempts.popitem(last=False)
        return n

    def _delay(self, profile: Profile, rng: Random) -> float:
        low, high = profile.latency_s
        return self.latency * (low + (high - low) * rng.random() ** 2)

    async def _send(self, request: web.Request, rendered: Rendered, delay: float) -> web.StreamResponse:
        pieces = [p for p in rendered.pieces if p]
        first = delay * (0.35 if rendered.stream else 1.0)
        gap = (delay - first) / max(1, len(pieces) - 1) if rendered.stream else 0.0
        if first > 0:
            await asyncio.sleep(first)
        response = web.StreamResponse(status=rendered.status, headers=rendered.headers)
        if not rendered.stream:
            response.content_length = sum(len(p) for p in pieces)
        try:
            await response.prepare(request)
            for i, piece in enumerate(pieces):
                if i and gap > 0:
                    await asyncio.sleep(gap)
                await response.write(piece)
            await response.write_eof()
        except ConnectionResetError:  # the client went away (an agent cancelled): nothing left to answer
            pass
        return response


_RENDER = {"openai": wire_openai.render, "anthropic": wire_anthropic.render, "gemini": wire_gemini.render}
