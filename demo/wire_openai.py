"""OpenAI Chat Completions wire format for the fake upstream.

Mirrors what api.openai.com sends in 2025-2026: compact JSON with raw UTF-8,
`chat.completion.chunk` SSE events ending in `data: [DONE]`, tool-call id,
type and name only in the first delta of each call, `"usage": null` on every
chunk plus a final `choices: []` usage chunk when
`stream_options.include_usage` is set, and an `obfuscation` padding field
unless `stream_options.include_obfuscation` is false.
"""

from __future__ import annotations

import time
from typing import Any

from toolwatch.demo.rendered import Rendered
from toolwatch.demo.script import Ids, Received, Reply, default_usage, dumps, split_arguments, split_text

_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_PAD = "Zk3xQ9wLr7TbN2vHc5Jm8YdPg4Ks6EaUf"


def error_object(reply: Reply) -> dict[str, Any]:
    """The ``error`` object OpenAI's APIs (Chat Completions and Responses alike) answer a failure with."""
    error_type, code = _ERRORS.get(reply.status, ("server_error", None))
    return {
        "message": reply.error_message or f"fake upstream error {reply.status}",
        "type": reply.error_type or error_type,
        "param": None,
        "code": reply.error_code or code,
    }


def render(reply: Reply, received: Received, ids: Ids) -> Rendered:
    n = ids.count("openai-request")
    headers = {
        "x-request-id": f"req_{n:032x}",
        "openai-processing-ms": str(100 + 7 * (n % 50)),
        "openai-version": "2020-10-01",
        "openai-organization": "user-toolwatch-fake",
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": str(max(0, 10000 - n)),
        "x-ratelimit-reset-requests": "6ms",
        "x-ratelimit-limit-tokens": "30000000",
        "x-ratelimit-remaining-tokens": "29999000",
        "x-ratelimit-reset-tokens": "0s",
    }
    if reply.status != 200:
        error = error_object(reply)
        if reply.status == 429:
            headers["retry-after"] = "1"
        return Rendered.json(reply, headers, dumps({"error": error}))
    if received.stream:
        return Rendered.sse(reply, headers, [] if reply.raw is not None else _stream(reply, received, ids))
    return Rendered.json(reply, headers, b"" if reply.raw is not None else dumps(_completion(reply, received, ids)))


def _finish_reason(reply: Reply) -> str:
    if reply.finish_reason is not None:
        return reply.finish_reason
    return "tool_calls" if reply.tool_calls else "stop"


def _usage(reply: Reply, received: Received) -> dict[str, Any]:
    u = default_usage(reply, received)
    prompt = u.input_tokens + u.cache_read_tokens + u.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _head(reply: Reply, received: Received, ids: Ids, object_type: str) -> dict[str, Any]:
    return {
        "id": ids.next("chatcmpl-fake"),
        "object": object_type,
        "created": int(time.time()),
        "model": reply.model or received.model or "gpt-4o-mini",
    }


def _completion(reply: Reply, received: Received, ids: Ids) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text if reply.text or not reply.tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id or ids.next("call_"),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in reply.tool_calls
        ]
    return {
        **_head(reply, received, ids, "chat.completion"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(reply)}],
        "usage": _usage(reply, received),
        "service_tier": "default",
        "system_fingerprint": "fp_toolwatch",
    }


def _stream(reply: Reply, received: Received, ids: Ids) -> list[bytes]:
    options = received.json.get("stream_options") if isinstance(received.json, dict) else None
    options = options if isinstance(options, dict) else {}
    include_usage = options.get("include_usage") is True
    obfuscate = options.get("include_obfuscation", True) is not False
    head = {**_head(reply, received, ids, "chat.completion.chunk"), "service_tier": "default"}
    head["system_fingerprint"] = "fp_toolwatch"
    events: list[bytes] = []

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> None:
        body: dict[str, Any] = dict(head)
        body["choices"] = (
            [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        )
        if include_usage:
            body["usage"] = usage
        if obfuscate:
            # The real padding is random; its length varies so event sizes do not leak tokens.
            body["obfuscation"] = _PAD[: 3 + len(events) * 5 % (len(_PAD) - 3)]
        events.append(b"data: " + dumps(body) + b"\n\n")

    has_text = bool(reply.text) or not reply.tool_calls
    role: dict[str, Any] = {"role": "assistant", "content": "" if has_text else None}
    if has_text:
        chunk({**role, "refusal": None})
        role = {}
        for piece in split_text(reply.text):
            chunk({"content": piece})
    for index, call in enumerate(reply.tool_calls):
        start = {
            "index": index,
            "id": call.id or ids.next("call_"),
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        # Only the very first delta of the message carries the role (and refusal).
        chunk({**role, "tool_calls": [start], **({"refusal": None} if role else {})})
        role = {}
        for piece in split_arguments(call.arguments):
            chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    chunk({}, _finish_reason(reply))
    if include_usage:
        chunk(None, usage=_usage(reply, received))
    events.append(b"data: [DONE]\n\n")
    return events
