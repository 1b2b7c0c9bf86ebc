"""The forwarder: the only code that moves bytes between an agent and an upstream.

A request is forwarded with its body unchanged; the response comes back byte for byte (no
decompression, no re-serialisation), SSE chunk by chunk as it arrives. When the exchange ends, however
it ends, one ``Exchange`` and the kept bytes are appended to the recording sink, which never blocks.
Nothing toolwatch does after the upstream answered can fail the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from toolwatch.proxy.errorbody import error_body
from toolwatch.proxy.headers import Tracing, recorded_response_headers, response_headers, split_request
from toolwatch.proxy.uuid7 import uuid7
from toolwatch.schemas.exchange import Exchange
from toolwatch.schemas.settings import Settings, Upstream

log = logging.getLogger("toolwatch.proxy")
SSE = "text/event-stream"


class ExchangeSink(Protocol):
    def append(self, exchange: Exchange, request: bytes, response: bytes) -> bool: ...


@dataclass
class _Capture:
    """Bytes kept for the recorder, up to the parse limit; the rest only counted."""

    limit: int
    parts: list[bytes] = field(default_factory=list)
    kept: int = 0
    seen: int = 0
    truncated: bool = False

    def add(self, chunk: bytes) -> None:
        self.seen += len(chunk)
        if self.truncated:
            return
        if self.kept + len(chunk) > self.limit:
            self.truncated = True
            return
        self.parts.append(chunk)
        self.kept += len(chunk)

    def data(self) -> bytes:
        return b"" if self.truncated else b"".join(self.parts)


@dataclass
class _State:
    """What the forwarder learned about one exchange, turned into an Exchange at the end."""

    upstream: str
    upstream_api: str
    method: str
    path: str
    tracing: Tracing
    started: float
    started_at: datetime
    request: _Capture
    response: _Capture
    status: int = 0
    outcome: str = "ok"
    error: str | None = None
    ttfb: float | None = None
    finished: float = 0.0
    request_content_type: str | None = None
    response_content_type: str | None = None
    response_content_encoding: str | None = None
    recorded_headers: dict[str, str] = field(default_factory=dict)


class Forwarder:
    def __init__(self, settings: Settings, session: aiohttp.ClientSession, sink: ExchangeSink) -> None:
        self.settings = settings
        self.session = session
        self.sink = sink
        self.upstreams: dict[str, Upstream] = dict(settings.upstreams)
        self.in_flight = 0
        self.record_failures = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["upstream"]
        upstream = self.upstreams.get(name)
        if upstream is None:
            return web.json_response(
                {
                    "error": {
                        "message": f"no upstream named {name!r} is configured",
                        "type": "toolwatch_error",
                    }
                },
                status=404,
            )
        raw_path, _, raw_query = request.raw_path.partition("?")
        rest = raw_path[len(name) + 1 :]  # keeps the agent's own percent-encoding
        target = URL(upstream.url + rest + ("?" + raw_query if raw_query else ""), encoded=True)
        headers, tracing = split_request(request.headers)
        limit = self.settings.parse_limit
        st = _State(
            upstream=name,
            upstream_api=upstream.api,
            method=request.method,
            path=rest or "/",
            tracing=tracing,
            started=time.perf_counter(),
            started_at=datetime.now(UTC),
            request=_Capture(limit),
            response=_Capture(limit),
            request_content_type=request.headers.get("content-type"),
        )
        self.in_flight += 1
        try:
            return await self._forward(request, target, headers, st)
        except asyncio.CancelledError:
            st.outcome, st.error = "client_aborted", "client disconnected"
            raise
        finally:
            self.in_flight -= 1
            st.finished = time.perf_counter()
            # after the response is on its way: recording is not the agent's latency
            asyncio.get_running_loop().call_soon(self._record, st)

    async def _forward(
        self, request: web.Request, target: URL, headers: CIMultiDict[str], st: _State
    ) -> web.StreamResponse:
        data: bytes | AsyncIterator[bytes] | None
        length = request.content_length
        if not request.body_exists:
            data = None
        elif length is not None and length <= st.request.limit:
            data = await request.read()
            st.request.add(data)
        else:
            data = self._stream_body(request, st)
        try:
            async with asyncio.timeout(self.settings.first_byte_timeout):
                upstream = await self.session.request(
                    request.method,
                    target,
                    headers=headers,
                    data=data,
                    allow_redirects=False,
                )
        except TimeoutError:
            return self._fail(st, 504, "upstream_timeout", "the upstream did not answer in time")
        except aiohttp.ClientError as e:
            return self._fail(st, 502, "connect_error", f"cannot reach the upstream: {type(e).__name__}")
        try:
            st.status = upstream.status
            st.outcome = "ok" if upstream.status < 400 else "http_error"
            st.response_content_type = upstream.headers.get("content-type")
            st.response_content_encoding = upstream.headers.get("content-encoding")
            st.recorded_headers = recorded_response_headers(upstream.headers)
            out_headers = response_headers(upstream.headers)
            clen = upstream.content_length
            ctype = st.response_content_type or ""
            if clen is not None and clen <= st.response.limit and not ctype.startswith(SSE):
                try:
                    body = await upstream.read()
                except (aiohttp.ClientError, TimeoutError) as e:
                    return self._fail(st, 502, "upstream_error", f"upstream response broke off: {type(e).__name__}")
                st.ttfb = time.perf_counter() - st.started
                st.response.add(body)
                return web.Response(status=upstream.status, reason=upstream.reason, headers=out_headers, body=body)
            return await self._stream_back(request, upstream, out_headers, st)
        finally:
            upstream.release()

    async def _stream_body(self, request: web.Request, st: _State) -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_any():
            st.request.add(chunk)
            yield chunk

    async def _stream_back(
        self, request: web.Request, upstream: aiohttp.ClientResponse, headers: CIMultiDict[str], st: _State
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
        await resp.prepare(request)
        chunks = upstream.content.iter_any()
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except TimeoutError:
                return self._break_off(request, upstream, st, "upstream_timeout", "the upstream stream went idle", resp)
            except aiohttp.ClientError as e:
                return self._break_off(
                    request,
                    upstream,
                    st,
                    "upstream_error",
                    f"upstream stream broke off: {type(e).__name__}",
                    resp,
                )
            if st.ttfb is None:
                st.ttfb = time.perf_counter() - st.started
            st.response.add(chunk)
            try:
                await resp.write(chunk)
            except ConnectionResetError:  # includes aiohttp.ClientConnectionResetError
                st.outcome, st.error = "client_aborted", "client disconnected"
                upstream.close()
                return resp
        await resp.write_eof()
        return resp

    @staticmethod
    def _break_off(
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        st: _State,
        outcome: str,
        message: str,
        resp: web.StreamResponse,
    ) -> web.StreamResponse:
        """The upstream failed after its headers were sent on: end the agent's stream the same way."""
        st.outcome, st.error = outcome, message
        upstream.close()
        if request.transport is not None:
            request.transport.close()  # the agent sees its stream break, as the upstream's did
        return resp

    def _fail(self, st: _State, status: int, outcome: str, message: str) -> web.Response:
        st.status, st.outcome, st.error = status, outcome, message
        body = error_body(st.upstream_api, status, message, outcome)
        st.response.add(body)
        return web.Response(status=status, body=body, content_type="application/json")

    def _record(self, st: _State) -> None:
        """Hand the finished exchange to the sink. Toolwatch's own trouble here is logged, never raised."""
        try:
            # model_construct: every field is built here from typed state, so validation would only cost time
            ex = Exchange.model_construct(
                id=uuid7(),
                started_at=st.started_at,
                upstream=st.upstream,
                api=st.upstream_api,
                method=st.method,
                path=st.path,
                status=st.status,
                outcome=st.outcome,
                error=st.error,
                latency_ms=(st.finished - st.started) * 1000.0,
                ttfb_ms=None if st.ttfb is None else st.ttfb * 1000.0,
                request_content_type=st.request_content_type,
                response_content_type=st.response_content_type,
                response_content_encoding=st.response_content_encoding,
                request_size=st.request.seen,
                response_size=st.response.seen,
                request_truncated=st.request.truncated,
                response_truncated=st.response.truncated,
                session_id=st.tracing.session_id,
                agent=st.tracing.agent,
                user_id=st.tracing.user_id,
                properties=st.tracing.properties,
                response_headers=st.recorded_headers,
            )
            self.sink.append(ex, st.request.data(), st.response.data())
        except Exception:  # noqa: BLE001 - recording must never fail a proxied request
            self.record_failures += 1
            log.exception("could not record an exchange")
