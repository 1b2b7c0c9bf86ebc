"""OpenTelemetry: one span per LLM call and one per tool call, exported over OTLP/HTTP by the recorder.

On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the standard ``OTEL_*`` variables apply, ``OTEL_BSP_*``
included) or the ``otel_endpoint`` setting is (spans go to ``<otel_endpoint>/v1/traces``). Spans carry the
exchange's real times, and follow the GenAI span conventions of OpenTelemetry semantic conventions v1.41.0
(status: Development):

- an LLM call: ``{gen_ai.operation.name} {gen_ai.request.model}`` (``chat gpt-4o``), kind CLIENT, from the
  request's arrival to its last response byte;
- a tool call: ``execute_tool {gen_ai.tool.name}``, kind INTERNAL, a child of the call that emitted it, from
  the end of that response to the arrival of the request carrying its result. A call whose result never
  comes is exported when its session is abandoned (after ``abandon_after`` seconds) with
  ``error.type=missing``.

An incoming W3C ``traceparent`` makes an LLM call's span a child of the agent's span, in the agent's trace;
without one, each session is one trace. Ids derive from the records, so a replayed exchange gives the
same spans. The spans are built here as ``ReadableSpan`` objects, with their recorded times and ids, and
handed to the SDK's ``BatchSpanProcessor`` (its bounded queue and worker thread do the exporting).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import UUID

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from toolwatch.recorder.links import Lru
from toolwatch.schemas.records import LlmCall, ToolCall, ToolResult
from toolwatch.schemas.settings import Settings
from toolwatch.store.sink import Batch

log = logging.getLogger("toolwatch.otel")
SEMCONV = "1.41.0"
SCOPE = InstrumentationScope("toolwatch", schema_url=f"https://opentelemetry.io/schemas/{SEMCONV}")
PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini", "azure": "azure.ai.openai"}
OPERATIONS = {
    "chat_completions": "chat",
    "messages": "chat",
    "responses": "chat",
    "generate_content": "generate_content",
    "stream_generate_content": "generate_content",
}


def enabled(settings: Settings) -> bool:
    return bool(settings.otel_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def exporter_for(settings: Settings) -> SpanExporter:
    if settings.otel_endpoint:
        return OTLPSpanExporter(endpoint=settings.otel_endpoint.rstrip("/") + "/v1/traces")
    return OTLPSpanExporter()  # the OTEL_EXPORTER_OTLP_* variables say where


def _id(bits: int, *parts: bytes) -> int:
    digest = hashlib.blake2b(b"\x1f".join(parts), digest_size=bits // 8).digest()
    return int.from_bytes(digest, "big") or 1


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def parse_traceparent(value: str) -> SpanContext | None:
    parts = value.strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 1))


@dataclass(frozen=True)
class _Pending:
    call: ToolCall
    context: SpanContext
    parent: SpanContext
    start_ns: int
    session: str


class SpanExport:
    def __init__(self, settings: Settings, exporter: SpanExporter, abandon_after: float = 600.0) -> None:
        self.resource = Resource.create({"service.name": "toolwatch"})  # OTEL_SERVICE_NAME and _RESOURCE_ATTRIBUTES win
        self.processor = BatchSpanProcessor(exporter)
        self.content = settings.otel_tool_content
        self.abandon_after = abandon_after
        self.hosts = {name: urlsplit(u.url).hostname or "" for name, u in settings.upstreams.items()}
        self.pending: Lru[tuple[str, str], _Pending] = Lru(200_000)

    # -- per batch -----------------------------------------------------------------------------------
    def observe(self, batch: Batch) -> None:
        calls: dict[UUID, tuple[LlmCall, SpanContext]] = {}
        for call in batch.llm_calls:
            if call.endpoint == "other":
                continue
            span = self._llm_span(call)
            assert span.context is not None
            calls[call.call_id] = (call, span.context)
            self.processor.on_end(span)
        for tc in batch.tool_calls:
            found = calls.get(tc.call_id)
            if found is None:
                continue
            call, ctx = found
            end = _end_ns(call)
            child = SpanContext(ctx.trace_id, _id(64, b"tool", tc.tool_call_uid.bytes), False, ctx.trace_flags)
            self.pending.put((tc.upstream, tc.tool_call_id), _Pending(tc, child, ctx, end, _session(call)))
        for result in batch.tool_results:
            waiting = self.pending.pop((result.upstream, result.tool_call_id), None)
            if waiting is not None:
                self.processor.on_end(self._tool_span(waiting, _ns(result.ts.timestamp()), result))

    def expire(self, now: float | None = None) -> int:
        """Export the tool calls whose result never came, once their session counts as abandoned."""
        cutoff = _ns((time.time() if now is None else now) - self.abandon_after)
        gone = [key for key, p in self.pending.items() if p.start_ns < cutoff]
        for key in gone:
            p = self.pending.pop(key)
            self.processor.on_end(self._tool_span(p, p.start_ns + _ns(self.abandon_after), None))
        return len(gone)

    def flush(self) -> None:
        self.processor.force_flush()

    def shutdown(self) -> None:
        self.processor.shutdown()  # type: ignore[no-untyped-call]

    # -- spans ---------------------------------------------------------------------------------------
    def _llm_span(self, call: LlmCall) -> ReadableSpan:
        session = _session(call)
        parent = parse_traceparent(call.traceparent) if call.traceparent else None
        trace_id = parent.trace_id if parent is not None else _id(128, b"session", session.encode())
        flags = parent.trace_flags if parent is not None else TraceFlags(TraceFlags.SAMPLED)
        ctx = SpanContext(trace_id, _id(64, b"llm", call.call_id.bytes), False, flags)
        operation = OPERATIONS.get(call.endpoint, "chat")
        requested = call.model_requested or call.model
        attributes: dict[str, object] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": PROVIDERS.get(call.upstream, call.upstream),
            "gen_ai.request.model": requested,
            "gen_ai.conversation.id": session,
            "server.address": self.hosts.get(call.upstream, ""),
            "toolwatch.call_id": str(call.call_id),
            "toolwatch.upstream": call.upstream,
            "toolwatch.api": call.api,
            "toolwatch.endpoint": call.endpoint,
            "toolwatch.outcome": call.outcome,
            "toolwatch.tool_call_count": call.tool_call_count,
            "toolwatch.malformed_count": call.malformed_count,
            "http.response.status_code": call.status,
        }
        if call.model_returned:
            attributes["gen_ai.response.model"] = call.model_returned
        if call.response_id:
            attributes["gen_ai.response.id"] = call.response_id
        if call.finish_reason:
            attributes["gen_ai.response.finish_reasons"] = [call.finish_reason]
        if call.output_tokens is not None:
            attributes["gen_ai.usage.output_tokens"] = call.output_tokens
        if call.input_tokens is not None:  # all input tokens: toolwatch keeps the uncached ones apart
            total = call.input_tokens + (call.cache_read_tokens or 0) + (call.cache_write_tokens or 0)
            attributes["gen_ai.usage.input_tokens"] = total
        if call.agent:
            attributes["toolwatch.agent"] = call.agent
        failed = call.outcome != "ok" or call.status >= 400
        if failed:
            attributes["error.type"] = call.outcome if call.outcome != "http_error" else str(call.status)
        return ReadableSpan(
            name=f"{operation} {requested}",
            context=ctx,
            parent=parent,
            resource=self.resource,
            attributes=attributes,  # type: ignore[arg-type]
            kind=SpanKind.CLIENT,
            status=Status(StatusCode.ERROR) if failed else Status(StatusCode.UNSET),
            start_time=_ns(call.ts.timestamp()),
            end_time=_end_ns(call),
            instrumentation_scope=SCOPE,
        )

    def _tool_span(self, p: _Pending, end_ns: int, result: ToolResult | None) -> ReadableSpan:
        tc = p.call
        attributes: dict[str, object] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tc.name,
            "gen_ai.tool.call.id": tc.tool_call_id,
            "gen_ai.tool.type": "function",
            "gen_ai.conversation.id": p.session,
            "toolwatch.call_id": str(tc.call_id),
        }
        error = ""
        if tc.malformed_kind:
            error = "malformed"
            attributes["toolwatch.malformed_kind"] = tc.malformed_kind
        elif result is None:
            error = "missing"
        elif result.error_rule:
            error = result.error_rule
        if error:
            attributes["error.type"] = error
        if self.content:
            attributes["gen_ai.tool.call.arguments"] = tc.raw_arguments
            if result is not None:
                attributes["gen_ai.tool.call.result"] = result.content
        return ReadableSpan(
            name=f"execute_tool {tc.name}",
            context=p.context,
            parent=p.parent,
            resource=self.resource,
            attributes=attributes,  # type: ignore[arg-type]
            kind=SpanKind.INTERNAL,
            status=Status(StatusCode.ERROR) if error else Status(StatusCode.UNSET),
            start_time=p.start_ns,
            end_time=max(end_ns, p.start_ns),
            instrumentation_scope=SCOPE,
        )


def _end_ns(call: LlmCall) -> int:
    """When the call's last response byte went out: its span's end, and its tool calls' start."""
    return _ns(call.ts.timestamp()) + _ns(call.latency_ms / 1000.0)


def _session(call: LlmCall) -> str:
    if call.session_id:
        return f"h:{call.session_id}"
    key = call.link_key or call.conv_key
    return f"k:{key}" if key else f"c:{call.call_id}"
