"""Gemini ``generateContent`` / ``streamGenerateContent`` wire format for the fake upstream.

Mirrors generativelanguage.googleapis.com: the model is named in the path
(``/v1beta/models/{model}:generateContent``); non-streamed bodies are JSON pretty-printed with two-space
indents; ``:streamGenerateContent?alt=sse`` sends ``data: <compact JSON>`` events separated by CRLF blank
lines, and without ``alt=sse`` one JSON array whose pretty-printed elements are written as they are
produced. Each chunk carries ``usageMetadata``, ``modelVersion`` and ``responseId``; text arrives in
pieces, a function call whole in one part (``args`` as an object, ``id`` only when the script gives one,
and a ``thoughtSignature`` on the first call of a turn, as thinking models send it); the last chunk has
the ``finishReason`` (``STOP`` also for function calls).

Function-call arguments must be valid JSON objects (``args`` is an object on the wire); otherwise the
fake answers 500 naming the problem, as the Anthropic fake does for non-streamed tool_use blocks.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from toolwatch.demo.rendered import Rendered
from toolwatch.demo.script import Ids, Received, Reply, default_usage, dumps, split_text

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MODEL = re.compile(r"/models/([^/:]+):")


def model_of(path: str) -> str | None:
    match = _MODEL.search(urlsplit(path).path)
    return match.group(1) if match else None


def is_stream(path: str) -> bool:
    return urlsplit(path).path.endswith(":streamGenerateContent")


def is_sse(path: str) -> bool:
    return parse_qs(urlsplit(path).query).get("alt") == ["sse"]


def pretty(value: Any) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode()


def render(reply: Reply, received: Received, ids: Ids) -> Rendered:
    n = ids.count("gemini-request")
    headers = {"x-gemini-service-tier": "standard", "server-timing": f"gfet4t7; dur={200 + n}"}
    stream, sse = is_stream(received.path), is_sse(received.path)
    if reply.status != 200:
        return Rendered.json(reply, headers, _error(reply.status, reply.error_message))
    if reply.raw is not None:
        return _send(reply, headers, [], stream, sse)
    try:
        parts = _call_parts(reply, ids)
    except ValueError as e:
        return Rendered.json(Reply(status=500, headers=reply.headers), headers, _error(500, str(e)))
    model = reply.model or model_of(received.path) or "gemini-2.5-flash"
    shell = {"modelVersion": model, "responseId": ids.next("fakeGeminiResp")}
    usage = _usage(reply, received)
    finish = reply.finish_reason or "STOP"
    if not stream:
        text = [{"text": reply.text}] if reply.text else []
        return Rendered.json(reply, headers, pretty(_chunk(text + parts, finish, usage, shell)))
    pieces: list[list[dict[str, Any]]] = [[{"text": t}] for t in split_text(reply.text)]
    pieces += [[p] for p in parts]
    if not pieces:
        pieces = [[{"text": ""}]]
    partial = {k: v for k, v in usage.items() if k != "candidatesTokenCount"}
    chunks = [
        _chunk(p, finish if i == len(pieces) - 1 else None, usage if i == len(pieces) - 1 else partial, shell)
        for i, p in enumerate(pieces)
    ]
    if sse:
        return _send(reply, headers, [b"data: " + dumps(c) + b"\r\n\r\n" for c in chunks], stream, sse)
    body = [(b"[" if i == 0 else b",\r\n") + pretty(c) for i, c in enumerate(chunks)] + [b"]"]
    return _send(reply, headers, body, stream, sse)


def _send(reply: Reply, headers: dict[str, str], pieces: list[bytes], stream: bool, sse: bool) -> Rendered:
    if stream and sse:
        return Rendered.sse(reply, headers, pieces)
    if stream:
        return Rendered.json_stream(reply, headers, pieces)
    return Rendered.json(reply, headers, b"".join(pieces))


def _error(status: int, message: str | None) -> bytes:
    error = {
        "code": status,
        "message": message or f"fake upstream error {status}",
        "status": _STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"),
    }
    return pretty({"error": error})


def _call_parts(reply: Reply, ids: Ids) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for call in reply.tool_calls:
        try:
            args = orjson.loads(call.arguments) if call.arguments.strip() else {}
        except orjson.JSONDecodeError:
            args = None
        if not isinstance(args, dict):
            raise ValueError(
                f"fake upstream: tool {call.name!r} arguments {call.arguments!r} are not a JSON object; "
                "a Gemini functionCall carries its args as an object"
            )
        fn: dict[str, Any] = {"name": call.name, "args": args}
        if call.id is not None:
            fn = {"id": call.id, **fn}
        part: dict[str, Any] = {"functionCall": fn}
        if not parts:
            raw = f"fake-thought-signature-{ids.count('gemini-signature')}".encode()
            part["thoughtSignature"] = base64.b64encode(raw).decode()
        parts.append(part)
    return parts


def _usage(reply: Reply, received: Received) -> dict[str, Any]:
    u = default_usage(reply, received)
    prompt = u.input_tokens + u.cache_read_tokens + u.cache_write_tokens
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": u.output_tokens,
        "totalTokenCount": prompt + u.output_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if u.cache_read_tokens:
        usage["cachedContentTokenCount"] = u.cache_read_tokens
    return usage


def _chunk(
    parts: list[dict[str, Any]], finish: str | None, usage: dict[str, Any], shell: dict[str, Any]
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if finish is not None:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    return {"candidates": [candidate], "usageMetadata": usage, **shell}
