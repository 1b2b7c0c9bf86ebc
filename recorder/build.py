"""``build(frame, parsed, links, options) -> Records``: the one place stored records are made.

One pass, final records: what the providers parsed is mapped to rows, each tool call is validated and
each tool result classified, and the two links the recorder's memory can resolve (the session a call
continues, the call that produced a result) are filled in. ``links`` is only read here; the loop tells
it what was built afterwards. Record ids derive from the exchange id, so a frame built twice gives the
same rows.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from toolwatch.providers import Parsed
from toolwatch.providers.base import ToolCallOut
from toolwatch.providers.decoders import DecodeError, decode_body
from toolwatch.recorder.links import Key, Links
from toolwatch.recorder.outcomes import Classifier
from toolwatch.recorder.redact import Redactor
from toolwatch.recorder.sessions import conv_key, opening_key
from toolwatch.recorder.validate import SchemaCache, Verdict, judge, parse_arguments
from toolwatch.schemas.exchange import Exchange
from toolwatch.schemas.records import Body, LlmCall, ToolCall, ToolResult
from toolwatch.schemas.vocab import TOKEN_LIMIT_REASONS, MalformedKind
from toolwatch.spool.frame import Frame

__all__ = ["BuildOptions", "Records", "build", "tool_signature"]

_NS_TOOL_CALL = uuid.UUID("5b0c6a52-8f0e-4d8e-9a38-0e7f3c1d2a01").bytes
_NS_RESULT = uuid.UUID("5b0c6a52-8f0e-4d8e-9a38-0e7f3c1d2a02").bytes
_ZERO = uuid.UUID(int=0)
# the version (5) and variant (RFC 4122) bits ``uuid.uuid5`` sets
_UUID5_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID5_SET = (0x8000 << 48) | (5 << 76)
_CANONICAL = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True)
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "apim-request-id")


@dataclass(frozen=True)
class BuildOptions:
    result_max_bytes: int = 64 * 1024
    # "redacted": bodies decoded and with secrets replaced; "full": as they were; "none" (False: "none")
    store_bodies: Literal["full", "redacted", "none"] | bool = "redacted"
    schemas: SchemaCache = field(default_factory=SchemaCache)  # compiled once, shared by every build
    classifier: Classifier = field(default_factory=Classifier)
    redactor: Redactor = field(default_factory=Redactor)

    @property
    def bodies(self) -> Literal["full", "redacted", "none"]:
        if isinstance(self.store_bodies, bool):
            return "full" if self.store_bodies else "none"
        return self.store_bodies


@dataclass(frozen=True)
class Records:
    """The rows of one exchange. ``resent`` are the results it carried that were already recorded."""

    call: LlmCall
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    body: Body | None = None
    resent: list[Key] = field(default_factory=list)


def build(frame: Frame, parsed: Parsed, links: Links, opts: BuildOptions) -> Records:
    ex = frame.exchange
    req, resp = parsed.request, parsed.response
    red = opts.redactor
    model = resp.model or parsed.model_requested or ""
    session_id, agent = ex.session_id or "", ex.agent or ""
    opening = opening_key(req)
    ckey = conv_key(req, resp, opening)
    tool_calls, sigs = _tool_calls(frame, parsed, model, ckey, opts.schemas, red)
    kinds = [t.malformed_kind for t in tool_calls if t.malformed_kind]
    first_prior = req.prior_tool_call_ids[0] if req.prior_tool_call_ids else ""
    previous = req.previous_response_id or ""
    usage = resp.usage
    headers = ex.response_headers
    # every field, in declaration order, of the type it is declared with (see ``LlmCall.trusted``)
    call = LlmCall.trusted(
        {
            "call_id": ex.id,
            "ts": ex.started_at,
            "upstream": ex.upstream,
            "api": ex.api,
            "endpoint": parsed.endpoint,
            "method": ex.method,
            "path": ex.path,
            "model_requested": parsed.model_requested,
            "model_returned": resp.model,
            "model": model,
            "deployment": parsed.deployment,
            "stream": req.stream,
            "status": ex.status,
            "outcome": ex.outcome,
            "error": red.optional(ex.error or resp.error_message),
            "parse_status": parsed.parse_status,
            "parse_error": red.optional(parsed.parse_error),
            "finish_reason": resp.finish_reason,
            "response_id": resp.response_id,
            "input_tokens": usage.input_uncached,
            "cache_read_tokens": usage.cache_read,
            "cache_write_tokens": usage.cache_write,
            "output_tokens": usage.output,
            "latency_ms": ex.latency_ms,
            "ttfb_ms": ex.ttfb_ms,
            "request_bytes": ex.request_size,
            "response_bytes": ex.response_size,
            "declared_tools": [t.name for t in req.tools],
            "tool_schemas": [t.schema_json or "" for t in req.tools],
            "tool_call_count": len(tool_calls),
            "tool_result_count": len(req.tool_results),
            "prior_tool_call_ids": list(req.prior_tool_call_ids),
            "message_count": req.message_count,
            "text_chars": len(resp.text),
            "session_id": session_id,
            "agent": agent,
            "user_id": ex.user_id or "",
            "properties": dict(ex.properties),
            "request_id": next((headers[h] for h in REQUEST_ID_HEADERS if headers.get(h)), "") if headers else "",
            "conv_key": ckey,
            "opening_key": opening,
            "first_prior_tool_call_id": first_prior,
            "previous_response_id": previous,
            "malformed_count": len(kinds),
            "malformed_kinds": kinds,
            "tool_sigs": sigs,
            "link_key": links.session_of(ex.upstream, previous, first_prior),
            "traceparent": ex.traceparent,
            "request_hash": request_hash(frame.request) if parsed.endpoint != "other" else 0,
            "key_fingerprint": ex.key_fingerprint,
        }
    )
    results: list[ToolResult] = []
    resent: list[Key] = []
    built_now: set[Key] = set()
    for tr in req.tool_results:
        key = (ex.upstream, tr.tool_call_id)
        if key in built_now or links.stored(key):
            resent.append(key)
            continue
        built_now.add(key)
        # secrets go before truncation, which could otherwise leave half a key that no pattern matches
        content, _, truncated = _truncate(red.text(tr.content), opts.result_max_bytes)
        results.append(
            ToolResult.trusted(
                {
                    "result_uid": _uuid5(_NS_RESULT, f"{ex.upstream}\x00{tr.tool_call_id}"),
                    "call_id": ex.id,
                    "ts": ex.started_at,
                    "upstream": ex.upstream,
                    "session_id": session_id,
                    "agent": agent,
                    "tool_call_id": tr.tool_call_id,
                    "content": content,
                    "content_bytes": len(tr.content.encode()),
                    "truncated": truncated,
                    "is_error": tr.is_error,
                    "error_rule": opts.classifier.classify(tr.content, tr.is_error),
                    "classified_at": ex.started_at,
                    "producer_call_id": links.producer_of(ex.upstream, tr.tool_call_id) or _ZERO,
                }
            )
        )
    return Records(call, tool_calls, results, _body(frame, parsed, opts), resent)


def _body(frame: Frame, parsed: Parsed, opts: BuildOptions) -> Body | None:
    mode = opts.bodies
    if mode == "none" or parsed.endpoint == "other":
        return None
    ex = frame.exchange
    request, response = frame.request, frame.response
    if mode == "redacted":
        try:  # secrets can only be found in the decoded text: the redacted body is stored decoded
            response = decode_body(response, ex.response_content_encoding)
        except DecodeError:
            response = b""
        request, response = opts.redactor.data(request), opts.redactor.data(response)
    return Body.trusted(
        {
            "call_id": ex.id,
            "ts": ex.started_at,
            "request_body": request,
            "response_body": response,
            "request_truncated": ex.request_truncated,
            "response_truncated": ex.response_truncated,
        }
    )


def _tool_calls(
    frame: Frame,
    parsed: Parsed,
    model: str,
    ckey: str,
    schemas: SchemaCache,
    red: Redactor,
) -> tuple[list[ToolCall], list[int]]:
    """Structured tool calls, each validated (on the text as produced); or else the calls written into the
    reply text. What is stored has its secrets redacted; the loop signatures are of the text as produced."""
    ex, resp = frame.exchange, parsed.response
    ex_id = str(ex.id)
    out: list[ToolCall] = []
    sigs: list[int] = []
    if resp.tool_calls:
        declared = parsed.declared
        last = len(resp.tool_calls) - 1
        truncated = resp.finish_reason in TOKEN_LIMIT_REASONS
        for i, tc in enumerate(resp.tool_calls):
            value, error = parse_arguments(tc.raw_arguments)
            arguments = _canonical(value)  # before validation, which may fill in the schema's defaults
            if truncated and i == last:
                verdict = Verdict("truncated", f"response stopped at its token limit ({resp.finish_reason})")
            else:
                verdict = judge(tc.name, value, error, declared, schemas)
            detail = red.text(verdict.detail)
            out.append(_tool_call(ex, ex_id, model, tc, arguments, verdict.kind, detail, ckey, red))
            sigs.append(tool_signature(tc.name, arguments, tc.raw_arguments))
    for n, found in enumerate(parsed.in_text):
        tc = ToolCallOut(n, f"intext-{ex_id}-{n}", found.name, found.raw_arguments)
        arguments = _canonical(parse_arguments(tc.raw_arguments)[0])
        detail = f"tool call written in the reply text ({found.style})"
        out.append(_tool_call(ex, ex_id, model, tc, arguments, "in_text", detail, ckey, red))
        sigs.append(tool_signature(tc.name, arguments, tc.raw_arguments))
    return out, sigs


def _tool_call(
    ex: Exchange,
    ex_id: str,
    model: str,
    tc: ToolCallOut,
    arguments: str | None,
    kind: MalformedKind | Literal[""],
    detail: str,
    ckey: str,
    red: Redactor,
) -> ToolCall:
    """The record of one tool call."""
    return ToolCall.trusted(
        {
            "tool_call_uid": _uuid5(_NS_TOOL_CALL, f"{ex_id}\x00{tc.index}"),
            "call_id": ex.id,
            "ts": ex.started_at,
            "upstream": ex.upstream,
            "model": model,
            "session_id": ex.session_id or "",
            "agent": ex.agent or "",
            "call_index": tc.index,
            "tool_call_id": tc.id,
            "name": tc.name,
            "raw_arguments": red.text(tc.raw_arguments),
            "arguments": red.optional(arguments),
            "malformed_kind": kind,
            "malformed_detail": detail,
            "conv_key": ckey,
        }
    )


def _uuid5(namespace: bytes, name: str) -> uuid.UUID:
    """``uuid.uuid5`` of a namespace given as its bytes, without its per-call conversions."""
    value = int.from_bytes(hashlib.sha1(namespace + name.encode(), usedforsecurity=False).digest()[:16], "big")
    return uuid.UUID(int=value & _UUID5_CLEAR | _UUID5_SET)


def request_hash(body: bytes) -> int:
    """Equal request bodies, equal hashes (0 is kept for "none"): how an analyzer tells a retry."""
    return int.from_bytes(hashlib.blake2b(body, digest_size=8).digest(), "big") or 1


def tool_signature(name: str, arguments: str | None, raw: str) -> int:
    """64-bit hash of a tool call's name and canonical arguments: equal calls, equal signatures (loops)."""
    digest = hashlib.blake2b(f"{name}\x00{arguments if arguments is not None else raw}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def _truncate(text: str, limit: int) -> tuple[str, int, bool]:
    raw = text.encode()
    if len(raw) <= limit:
        return text, len(raw), False
    return raw[:limit].decode(errors="ignore"), len(raw), True


def _canonical(value: Any) -> str | None:
    """Canonical JSON (compact, sorted keys) of arguments parsed by ``parse_arguments`` when they are a JSON
    object, else None: the standard library's text (which keeps integers of any size exactly). orjson
    writes the very same text, and far faster, for what holds no float (the two format floats apart)."""
    if not isinstance(value, dict):
        return None
    if not _has_float(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        except (TypeError, orjson.JSONEncodeError):
            pass  # integers beyond 64 bits, nesting deeper than orjson goes
    try:
        return _CANONICAL.encode(value)
    except (RecursionError, ValueError):  # nested deeper than the serialiser goes: kept as raw text only
        return None


def _has_float(value: Any) -> bool:
    todo = [value]
    while todo:
        node = todo.pop()
        kind = type(node)
        if kind is float:
            return True
        if kind is dict:
            todo += node.values()
        elif kind is list:
            todo += node
    return False
