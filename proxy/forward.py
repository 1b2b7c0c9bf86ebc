"""The forwarder: the only code that moves bytes between an agent and an upstream.

A request goes only to its configured upstream (``route.resolve``). Its body streams through unchanged,
with its ``Content-Length`` when it had one; the response streams back byte for byte as it arrives (no
decompression, no re-serialisation, no buffering), with its status, its headers as bytes and its length.
Meanwhile both bodies are captured up to the parse limit. The finished exchange is handed to the sink
before the last byte of the answer goes out, so an answer an agent received is never lost by a crash.
Nothing toolwatch does can fail a request: its own unexpected failure answers 502 in the provider's error
shape and is recorded as ``proxy_error``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Protocol

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from toolwatch.proxy.capture import Capture, State
from toolwatch.proxy.errorbody import error_body
from toolwatch.proxy.headers import key_fingerprint, recorded_response_headers, response_headers, split_request
from toolwatch.proxy.route import Route, RouteError, resolve
from toolwatch.schemas.exchange import Exchange
from toolwatch.schemas.settings import Settings, Upstream
from toolwatch.schemas.vocab import Outcome

log = logging.getLogger("toolwatch.proxy")
SSE = "text/event-stream"


class ExchangeSink(Protocol):
    def append(self, exchange: Exchange, request: bytes, response: bytes) -> bool: ...


class Forwarder:
    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        sink: ExchangeSink,
        salt: bytes = b"",
        overhead: Callable[[str, float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.session = session
        self.sink = sink
        self.salt = salt
        self.overhead = overhead  # told the overhead of every answer (the proxy's histogram)
        self.overhead_header = settings.overhead_header
        self.upstreams: dict[str, Upstream] = dict(settings.upstreams)
        self.in_flight = 0
        self.record_failures = 0
        self.stopping = False  # set by serve when it stops waiting for in-flight requests

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            route = resolve(request.raw_path, self.upstreams)
        except RouteError as e:
            return _refuse(e.status, e.message, self.upstreams)
        headers, tracing = split_request(request.headers)
        limit = self.settings.parse_limit
        st = State(
            upstream=route.name,
            upstream_api=route.upstream.api,
            method=request.method,
            path=route.rest or "/",
            tracing=tracing,
            started=time.perf_counter(),
            started_at=datetime.now(UTC),
            request=Capture(limit),
            response=Capture(limit),
            request_content_type=request.headers.get("content-type"),
            key_fingerprint=key_fingerprint(request.headers, request.query, self.salt),
            traceparent=request.headers.get("traceparent", ""),
        )
        self.in_flight += 1
        try:
            return await self._forward(request, route, headers, st)
        except asyncio.CancelledError:
            st.ended_by_client()
            if self.stopping and st.outcome == "client_aborted":
                st.error = "cut off: toolwatch stopped before the answer was complete (shutdown_timeout)"
            raise
        except Exception as e:  # noqa: BLE001 - toolwatch's own failure: the agent gets a proper error
            log.exception("unexpected failure while forwarding %s %s", request.method, route.name)
            return self._own_failure(request, st, e)
        finally:
            self.in_flight -= 1
            self._record(st)  # an exchange that ended without its answer is recorded as it ended

    async def _forward(
        self, request: web.Request, route: Route, headers: CIMultiDict[str], st: State
    ) -> web.StreamResponse:
        data: AsyncIterator[bytes] | None = None
        if request.body_exists:
            data = self._stream_body(request, st)
            if request.content_length is not None:  # sent with its length, never re-chunked
                headers["Content-Length"] = str(request.content_length)
        st.sending = time.perf_counter()  # toolwatch's own work before the upstream request ends here
        try:
            async with asyncio.timeout(self.settings.first_byte_timeout):
                upstream = await self.session.request(
                    request.method, route.target, headers=headers, data=data, allow_redirects=False
                )
        except TimeoutError:
            return self._fail(st, 504, "upstream_timeout", "the upstream did not answer in time")
        except aiohttp.ClientError as e:
            return self._fail(st, 502, "connect_error", f"cannot reach the upstream: {type(e).__name__}")
        st.answered = time.perf_counter()
        try:
            st.status = upstream.status
            st.outcome = "ok" if upstream.status < 400 else "http_error"
            st.response_content_type = upstream.headers.get("content-type")
            st.response_content_encoding = upstream.headers.get("content-encoding")
            st.recorded_headers = recorded_response_headers(upstream.headers)
            return await self._stream_back(request, upstream, response_headers(upstream.headers), st)
        finally:
            upstream.release()

    async def _stream_body(self, request: web.Request, st: State) -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_any():
            st.request.add(chunk)
            yield chunk

    async def _stream_back(
        self, request: web.Request, upstream: aiohttp.ClientResponse, headers: CIMultiDict[str], st: State
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
        self._stamp(resp.headers, st)
        await resp.prepare(request)
        st.answering = True
        length = upstream.content_length if request.method != "HEAD" else 0
        watch = (st.response_content_type or "").startswith(SSE)
        chunks = upstream.content.iter_any()
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                self._record(st)  # in the spool before the end of the answer reaches the agent
                break
            except TimeoutError:
                return self._break_off(request, upstream, resp, st, "upstream_timeout", "the upstream stream went idle")
            except aiohttp.ClientError as e:
                message = f"upstream stream broke off: {type(e).__name__}"
                return self._break_off(request, upstream, resp, st, "upstream_error", message)
            if st.ttfb is None:
                st.ttfb = time.perf_counter() - st.started
            st.response.add(chunk)
            if watch:
                st.final.feed(chunk)
            if length is not None and st.response.seen >= length:
                self._record(st)  # the agent knows the length: this chunk completes its answer
            try:
                await resp.write(chunk)
            except ConnectionResetError:  # includes aiohttp.ClientConnectionResetError
                st.ended_by_client()
                upstream.close()
                return resp
        await resp.write_eof()
        return resp

    @staticmethod
    def _break_off(
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        resp: web.StreamResponse,
        st: State,
        outcome: Outcome,
        message: str,
    ) -> web.StreamResponse:
        """The upstream failed after its headers were sent on: end the agent's stream the same way."""
        st.outcome, st.error = outcome, message
        upstream.close()
        if request.transport is not None:
            request.transport.close()  # the agent sees its stream break, as the upstream's did
        return resp

    def _fail(self, st: State, status: int, outcome: Outcome, message: str) -> web.Response:
        st.status, st.outcome, st.error = status, outcome, message
        st.answered = st.answered or time.perf_counter()
        body = error_body(st.upstream_api, status, message, outcome)
        st.response.add(body)
        self._record(st)
        resp = web.Response(status=status, body=body, content_type="application/json")
        self._stamp(resp.headers, st)
        return resp

    def _stamp(self, headers: CIMultiDict[str], st: State) -> None:
        """The time the proxy itself added before the answer's headers leave: from the request's arrival
        to the upstream request, plus from the upstream's headers (or its failure) to now."""
        now = time.perf_counter()
        own = ((st.sending or now) - st.started) + (now - (st.answered or now))
        if self.overhead_header:
            headers["toolwatch-overhead-ms"] = f"{own * 1000.0:.2f}"
        if self.overhead is not None:
            self.overhead(st.upstream, own)

    def _own_failure(self, request: web.Request, st: State, e: Exception) -> web.StreamResponse:
        message = f"toolwatch failed while forwarding: {type(e).__name__}"
        if not st.answering:  # nothing of the answer sent yet: a proper error
            st.response = Capture(st.response.limit)
            return self._fail(st, 502, "proxy_error", message)
        st.outcome, st.error = "proxy_error", message  # mid-answer: end it as a broken upstream would
        if request.transport is not None:
            request.transport.close()
        raise web.HTTPBadGateway() from e  # the connection is already closed; this only ends the handler

    def _record(self, st: State) -> None:
        """Hand the finished exchange to the sink, once. Toolwatch's own trouble here is logged, never
        raised into the request."""
        if st.recorded:
            return
        st.recorded = True
        try:
            self.sink.append(st.exchange(), st.request.data(), st.response.data())
        except Exception:  # noqa: BLE001 - recording must never fail a proxied request
            self.record_failures += 1
            log.exception("could not record an exchange")


def _refuse(status: int, message: str, upstreams: dict[str, Upstream]) -> web.Response:
    """An answer for a request that goes nowhere: an unknown mount, or a target that is refused."""
    body: dict[str, object] = {"message": message, "type": "toolwatch_error"}
    if status == 404:
        body["configured_upstreams"] = sorted(upstreams)
    return web.json_response({"error": body}, status=status)
