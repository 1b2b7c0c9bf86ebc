"""Turn one spool frame into records. The only place records are built (redaction will hook in here).

Pure: bytes and an Exchange in, typed records out. Parsing problems never raise: the call is still
recorded, with ``parse_status`` and ``parse_error`` saying what went wrong.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toolwatch.providers import intext, paths, registry
from toolwatch.providers._wire import strict_json
from toolwatch.providers.base import ParsedRequest, ParsedResponse, ToolCallOut
from toolwatch.recorder.outcomes import Classifier
from toolwatch.recorder.sessions import conv_key, opening_key
from toolwatch.recorder.validate import SchemaCache, classify
from toolwatch.schemas.exchange import Exchange
from toolwatch.schemas.records import Body, LlmCall, ToolCall, ToolResult
from toolwatch.spool.frame import Frame

# Record ids derive from the exchange id so a frame parsed twice gives the same ids.
_NS_TOOL_CALL = uuid.UUID("5b0c6a52-8f0e-4d8e-9a38-0e7f3c1d2a01")
_NS_RESULT = uuid.UUID("5b0c6a52-8f0e-4d8e-9a38-0e7f3c1d2a02")


REQUEST_ID_HEADERS = ("x-request-id", "request-id", "apim-request-id")


@dataclass(frozen=True)
class BuildOptions:
    result_max_bytes: int = 64 * 1024
    store_bodies: bool = True
    schemas: SchemaCache = field(default_factory=SchemaCache)  # compiled once, shared by every build
    classifier: Classifier = field(default_factory=Classifier)


@dataclass
class Built:
    call: LlmCall
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    body: Body | None = None
    # every tool result of the request in order, by (upstream, tool_call_id), with its record, or None
    # when ``build`` was told the id is already recorded (its record would be dropped as a duplicate)
    result_entries: list[tuple[tuple[str, str], ToolResult | None]] = field(default_factory=list)


def decode_body(data: bytes, encoding: str | None) -> bytes:
    """Undo a response's content-encoding (the proxy forwards it still encoded)."""
    enc = (encoding or "").strip().lower()
    if not enc or enc == "identity" or not data:
        return data
    if enc in ("gzip", "x-gzip"):
        return _inflate(data, 31)
    if enc == "deflate":
        try:
            return _inflate(data, zlib.MAX_WBITS)
        except zlib.error:
            return _inflate(data, -zlib.MAX_WBITS)
    if enc == "br":
        import brotli  # optional, installed with aiohttp[speedups]

        return bytes(brotli.decompress(data))
    if enc == "zstd":
        from compression import zstd  # Python 3.14+

        return bytes(zstd.decompress(data))
    raise ValueError(f"unsupported content-encoding {enc!r}")


def _inflate(data: bytes, wbits: int) -> bytes:
    """Decompress what there is: a body cut short (client abort, timeout) still yields its prefix."""
    inflater = zlib.decompressobj(wbits)
    return inflater.decompress(data) + inflater.flush()


def _truncate(text: str, limit: int) -> tuple[str, int, bool]:
    raw = text.encode()
    if len(raw) <= limit:
        return text, len(raw), False
    return raw[:limit].decode(errors="ignore"), len(raw), True


def _arguments(raw: str) -> str | None:
    """Canonical JSON (compact, sorted keys) of the arguments when they are a JSON object, else None.

    The standard library keeps integers of any size exactly (orjson would turn big ones into floats)."""
    try:
        value = strict_json(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _parse(ex: Exchange, endpoint: str, frame: Frame) -> tuple[ParsedRequest, ParsedResponse, str, str | None]:
    if ex.request_truncated or ex.response_truncated:
        return ParsedRequest(), ParsedResponse(), "too_large", "body larger than the parse limit"
    req = registry.parse_request(endpoint, frame.request)
    notes: list[str] = []
    if req.error:
        notes.append(f"request: {req.error}")
    resp = ParsedResponse()
    if frame.response:
        try:
            body = decode_body(frame.response, ex.response_content_encoding)
        except (OSError, ValueError, zlib.error, ImportError) as e:
            notes.append(f"response: cannot decode {ex.response_content_encoding}: {e}")
            body = b""
        streamed = (ex.response_content_type or "").startswith("text/event-stream")
        parser = registry.response_parser(endpoint, streamed)
        parser.feed(body)
        resp = parser.finish()
        if resp.errors and ex.outcome == "ok":
            notes.append("response: " + "; ".join(resp.errors[:5]))
    status = "parse_error" if notes else "ok"
    return req, resp, status, "; ".join(notes) or None


def build(frame: Frame, opts: BuildOptions, known: Callable[[tuple[str, str]], bool] | None = None) -> Built:
    """``known``, when given, says which (upstream, tool_call_id) results are already recorded: those are
    listed in ``result_entries`` without a record (building one would be wasted work)."""
    ex = frame.exchange
    endpoint = registry.endpoint_for(ex.api, ex.path)
    if endpoint is None:
        req, resp, parse_status, parse_error = ParsedRequest(), ParsedResponse(), "not_parsed", None
    else:
        req, resp, parse_status, parse_error = _parse(ex, endpoint, frame)
    model_requested = req.model or paths.model_from_path(ex.api, ex.path)  # Gemini names it in the path
    model = resp.model or model_requested or ""
    declared = {t.name: t.schema_json for t in req.tools}
    # a reply without structured tool calls may still hold calls the model wrote into its text
    in_text = [] if resp.tool_calls or endpoint is None else intext.detect(resp.text, declared)
    common: dict[str, Any] = {"session_id": ex.session_id or "", "agent": ex.agent or ""}
    ckey = conv_key(req, resp)
    call = LlmCall(
        call_id=ex.id,
        ts=ex.started_at,
        upstream=ex.upstream,
        api=ex.api,
        endpoint=endpoint or "other",
        method=ex.method,
        path=ex.path,
        model_requested=model_requested,
        model_returned=resp.model,
        deployment=paths.deployment_for(ex.api, ex.path, req.model),
        model=model,
        stream=req.stream,
        status=ex.status,
        outcome=ex.outcome,
        error=ex.error or resp.error_message,
        parse_status=parse_status,
        parse_error=parse_error,
        finish_reason=resp.finish_reason,
        response_id=resp.response_id,
        input_tokens=resp.usage.input_uncached,
        cache_read_tokens=resp.usage.cache_read,
        cache_write_tokens=resp.usage.cache_write,
        output_tokens=resp.usage.output,
        latency_ms=ex.latency_ms,
        ttfb_ms=ex.ttfb_ms,
        request_bytes=ex.request_size,
        response_bytes=ex.response_size,
        declared_tools=[t.name for t in req.tools],
        tool_schemas=[t.schema_json or "" for t in req.tools],
        tool_call_count=len(resp.tool_calls) + len(in_text),
        tool_result_count=len(req.tool_results),
        prior_tool_call_ids=list(req.prior_tool_call_ids),
        message_count=req.message_count,
        text_chars=len(resp.text),
        user_id=ex.user_id or "",
        properties=dict(ex.properties),
        request_id=next((ex.response_headers[h] for h in REQUEST_ID_HEADERS if ex.response_headers.get(h)), ""),
        conv_key=ckey,
        opening_key=opening_key(req),
        first_prior_tool_call_id=req.prior_tool_call_ids[0] if req.prior_tool_call_ids else "",
        previous_response_id=req.previous_response_id or "",
        **common,
    )
    built = Built(call)
    last = len(resp.tool_calls) - 1
    for i, tc in enumerate(resp.tool_calls):
        verdict = classify(
            tc.name, tc.raw_arguments, declared, finish_reason=resp.finish_reason, is_last=i == last, cache=opts.schemas
        )
        built.tool_calls.append(_tool_call(ex, model, tc, common, verdict.kind, verdict.detail, ckey))
    for n, found in enumerate(in_text):
        tc = ToolCallOut(n, f"intext-{ex.id}-{n}", found.name, found.raw_arguments)
        detail = f"tool call written in the reply text ({found.style})"
        built.tool_calls.append(_tool_call(ex, model, tc, common, "in_text", detail, ckey))
    kinds = [t.malformed_kind for t in built.tool_calls if t.malformed_kind]
    built.call = call.model_copy(
        update={
            "malformed_count": len(kinds),
            "malformed_kinds": kinds,
            "tool_sigs": [tool_signature(t.name, t.arguments, t.raw_arguments) for t in built.tool_calls],
        }
    )
    for tr in req.tool_results:
        key = (ex.upstream, tr.tool_call_id)
        if known is not None and known(key):
            built.result_entries.append((key, None))
            continue
        content, size, truncated = _truncate(tr.content, opts.result_max_bytes)
        result = ToolResult(
            result_uid=uuid.uuid5(_NS_RESULT, f"{ex.upstream}\x00{tr.tool_call_id}"),
            call_id=ex.id,
            ts=ex.started_at,
            upstream=ex.upstream,
            tool_call_id=tr.tool_call_id,
            content=content,
            content_bytes=size,
            truncated=truncated,
            is_error=tr.is_error,
            error_rule=opts.classifier.classify(tr.content, tr.is_error),
            classified_at=ex.started_at,
            **common,
        )
        built.tool_results.append(result)
        built.result_entries.append((key, result))
    if opts.store_bodies and endpoint is not None:
        built.body = Body(
            call_id=ex.id,
            ts=ex.started_at,
            request_body=frame.request,
            response_body=frame.response,
            request_truncated=ex.request_truncated,
            response_truncated=ex.response_truncated,
        )
    return built


def tool_signature(name: str, arguments: str | None, raw: str) -> int:
    """64-bit hash of a tool call's name and canonical arguments: equal calls, equal signatures (loops)."""
    digest = hashlib.blake2b(f"{name}\x00{arguments if arguments is not None else raw}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def _tool_call(
    ex: Exchange, model: str, tc: ToolCallOut, common: dict[str, Any], kind: str, detail: str, ckey: str
) -> ToolCall:
    return ToolCall(
        tool_call_uid=uuid.uuid5(_NS_TOOL_CALL, f"{ex.id}\x00{tc.index}"),
        call_id=ex.id,
        ts=ex.started_at,
        upstream=ex.upstream,
        model=model,
        call_index=tc.index,
        tool_call_id=tc.id,
        name=tc.name,
        raw_arguments=tc.raw_arguments,
        arguments=_arguments(tc.raw_arguments),
        malformed_kind=kind,
        malformed_detail=detail,
        conv_key=ckey,
        **common,
    )
