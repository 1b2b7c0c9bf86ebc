"""Anthropic Messages wire format for the fake upstream.

Mirrors api.anthropic.com: compact JSON with raw UTF-8, and streams of
`message_start`, then per content block `content_block_start` /
`content_block_delta`... / `content_block_stop` (one `ping` after the first
block starts), then `message_delta` (stop reason and cumulative usage) and
`message_stop`. A tool_use block's first delta is an empty `partial_json`,
as the real API sends.

Non-streamed tool_use blocks carry `input` as a parsed object, so the
scripted arguments must be valid JSON there (empty text means `{}`). When
they are not, the fake answers 500 with an `api_error` naming the problem:
the real API cannot produce such a body, so no faithful rendering exists.
Streams send the argument text as-is, valid or not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from toolwatch.demo.rendered import Rendered
from toolwatch.demo.script import Ids, Received, Reply, default_usage, dumps, split_arguments, split_text

_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def render(reply: Reply, received: Received, ids: Ids) -> Rendered:
    n = ids.count("anthropic-request")
    request_id = f"req_011CFake{n:014d}"
    reset = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {
        "request-id": request_id,
        "anthropic-organization-id": "00000000-0000-4000-8000-000000000000",
        "anthropic-ratelimit-requests-limit": "4000",
        "anthropic-ratelimit-requests-remaining": str(max(0, 4000 - n)),
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-input-tokens-limit": "400000",
        "anthropic-ratelimit-input-tokens-remaining": "400000",
        "anthropic-ratelimit-input-tokens-reset": reset,
        "anthropic-ratelimit-output-tokens-limit": "80000",
        "anthropic-ratelimit-output-tokens-remaining": "80000",
        "anthropic-ratelimit-output-tokens-reset": reset,
    }
    if reply.status != 200:
        if reply.status in (429, 529):
            headers["retry-after"] = "1"
        error_type = reply.error_type or _ERRORS.get(
            reply.status, "api_error" if reply.status >= 500 else "invalid_request_error"
        )
        message = reply.error_message or f"fake upstream error {reply.status}"
        return Rendered.json(reply, headers, _error(error_type, message, request_id))
    if received.stream:
        return Rendered.sse(reply, headers, [] if reply.raw is not None else _stream(reply, received, ids))
    if reply.raw is not None:
        return Rendered.json(reply, headers, b"")
    try:
        body = _message(reply, received, ids)
    except ValueError as e:
        broken = Reply(status=500, headers=reply.headers)
        return Rendered.json(broken, headers, _error("api_error", str(e), request_id))
    return Rendered.json(reply, headers, dumps(body))


def _error(error_type: str, message: str, request_id: str) -> bytes:
    return dumps({"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id})


def _stop_reason(reply: Reply) -> str:
    if reply.finish_reason is not None:
        return reply.finish_reason
    return "tool_use" if reply.tool_calls else "end_turn"


def _usage(reply: Reply, received: Received, output_tokens: int | None = None) -> dict[str, Any]:
    u = default_usage(reply, received)
    return {
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": u.cache_write_tokens, "ephemeral_1h_input_tokens": 0},
        "output_tokens": u.output_tokens if output_tokens is None else output_tokens,
        "service_tier": "standard",
    }


def _shell(reply: Reply, received: Received, ids: Ids) -> dict[str, Any]:
    return {
        "id": ids.next("msg_fake"),
        "type": "message",
        "role": "assistant",
        "model": reply.model or received.model or "claude-sonnet-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }


def _message(reply: Reply, received: Received, ids: Ids) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for call in reply.tool_calls:
        try:
            parsed = orjson.loads(call.arguments) if call.arguments else {}
        except orjson.JSONDecodeError:
            raise ValueError(
                f"fake upstream: tool {call.name!r} arguments {call.arguments!r} are not valid JSON; "
                "a non-streamed Anthropic tool_use block can only carry a parsed object"
            ) from None
        content.append({"type": "tool_use", "id": call.id or ids.next("toolu_"), "name": call.name, "input": parsed})
    return {
        **_shell(reply, received, ids),
        "content": content,
        "stop_reason": _stop_reason(reply),
        "usage": _usage(reply, received),
    }


def _event(name: str, data: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


def _stream(reply: Reply, received: Received, ids: Ids) -> list[bytes]:
    events: list[bytes] = []

    def emit(data: dict[str, Any]) -> None:
        events.append(_event(data["type"], dumps(data)))

    message = {**_shell(reply, received, ids), "usage": _usage(reply, received, output_tokens=1)}
    emit({"type": "message_start", "message": message})
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if reply.text:
        deltas = [{"type": "text_delta", "text": piece} for piece in split_text(reply.text)]
        blocks.append(({"type": "text", "text": ""}, deltas))
    for call in reply.tool_calls:
        start = {"type": "tool_use", "id": call.id or ids.next("toolu_"), "name": call.name, "input": {}}
        pieces = ["", *split_arguments(call.arguments)]
        blocks.append((start, [{"type": "input_json_delta", "partial_json": p} for p in pieces]))
    for index, (start, deltas) in enumerate(blocks):
        emit({"type": "content_block_start", "index": index, "content_block": start})
        if index == 0:
            # Anthropic documents the ping with a space after the colon, unlike every other event.
            events.append(_event("ping", b'{"type": "ping"}'))
        for delta in deltas:
            emit({"type": "content_block_delta", "index": index, "delta": delta})
        emit({"type": "content_block_stop", "index": index})
    usage = _usage(reply, received)
    del usage["cache_creation"], usage["service_tier"]
    emit(
        {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
            "usage": usage,
        }
    )
    emit({"type": "message_stop"})
    return events
