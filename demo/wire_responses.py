"""OpenAI Responses API wire format for the fake upstream (``POST .../responses``).

Mirrors api.openai.com in 2025-2026: a ``response`` object whose ``output`` holds a ``reasoning`` item
(when the request asks for ``reasoning``), an assistant ``message`` with one ``output_text`` part, and
one ``function_call`` item per tool call (``fc_...`` item id, ``call_...`` call id, arguments as text).
Streams are typed SSE events (``event: <type>`` plus JSON with the same ``type`` and a
``sequence_number``): ``response.created``, ``response.in_progress``, per item ``output_item.added``,
its deltas and ``.done`` events, ``output_item.done``, and ``response.completed`` (or
``response.incomplete`` when ``finish_reason`` is ``max_output_tokens`` or ``content_filter``) carrying
the whole response with usage. There is no ``[DONE]``.
"""

from __future__ import annotations

import time
from typing import Any

from toolwatch.demo.rendered import Rendered
from toolwatch.demo.script import Ids, Received, Reply, default_usage, dumps, split_arguments, split_text

from .wire_openai import error_object

INCOMPLETE_REASONS = frozenset({"max_output_tokens", "content_filter"})


def render(reply: Reply, received: Received, ids: Ids) -> Rendered:
    n = ids.count("responses-request")
    headers = {
        "x-request-id": f"req_{n:032x}",
        "openai-processing-ms": str(120 + 7 * (n % 50)),
        "openai-version": "2020-10-01",
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": str(max(0, 10000 - n)),
        "x-ratelimit-limit-tokens": "30000000",
        "x-ratelimit-remaining-tokens": "29999000",
    }
    if reply.status != 200:
        error = error_object(reply)
        return Rendered.json(reply, headers, dumps({"error": error}))
    if reply.raw is not None:
        return Rendered.sse(reply, headers, []) if received.stream else Rendered.json(reply, headers, b"")
    items = _items(reply, received, ids)
    response = _response(reply, received, ids, items)
    if received.stream:
        return Rendered.sse(reply, headers, _stream(reply, response, items))
    return Rendered.json(reply, headers, dumps(response))


def _request(received: Received) -> dict[str, Any]:
    return received.json if isinstance(received.json, dict) else {}


def _items(reply: Reply, received: Received, ids: Ids) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if "reasoning" in _request(received):
        items.append({"id": ids.next("rs_fake"), "type": "reasoning", "summary": []})
    if reply.text or not reply.tool_calls:
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": reply.text}
        items.append(
            {
                "id": ids.next("msg_fake"),
                "type": "message",
                "status": "completed",
                "content": [part],
                "role": "assistant",
            }
        )
    for call in reply.tool_calls:
        items.append(
            {
                "id": ids.next("fc_fake"),
                "type": "function_call",
                "status": "completed",
                "arguments": call.arguments,
                "call_id": call.id or ids.next("call_"),
                "name": call.name,
            }
        )
    return items


def _usage(reply: Reply, received: Received) -> dict[str, Any]:
    u = default_usage(reply, received)
    prompt = u.input_tokens + u.cache_read_tokens + u.cache_write_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": u.cache_read_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + u.output_tokens,
    }


def _response(reply: Reply, received: Received, ids: Ids, items: list[dict[str, Any]]) -> dict[str, Any]:
    req = _request(received)
    incomplete = reply.finish_reason in INCOMPLETE_REASONS
    return {
        "id": ids.next("resp_fake"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete else "completed",
        "background": False,
        "error": None,
        "incomplete_details": {"reason": reply.finish_reason} if incomplete else None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "model": reply.model or received.model or "gpt-4.1-2025-04-14",
        "output": items,
        "parallel_tool_calls": True,
        "previous_response_id": req.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": req.get("tools") if isinstance(req.get("tools"), list) else [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": _usage(reply, received),
        "user": None,
        "metadata": {},
    }


def _stream(reply: Reply, response: dict[str, Any], items: list[dict[str, Any]]) -> list[bytes]:
    events: list[bytes] = []

    def emit(kind: str, **data: Any) -> None:
        body = {"type": kind, "sequence_number": len(events), **data}
        events.append(b"event: " + kind.encode() + b"\ndata: " + dumps(body) + b"\n\n")

    shell = {**response, "status": "in_progress", "incomplete_details": None, "output": [], "usage": None}
    emit("response.created", response=shell)
    emit("response.in_progress", response=shell)
    for index, item in enumerate(items):
        at = {"output_index": index}
        if item["type"] == "message":
            part = item["content"][0]
            emit("response.output_item.added", **at, item={**item, "status": "in_progress", "content": []})
            ref = {"item_id": item["id"], **at, "content_index": 0}
            emit("response.content_part.added", **ref, part={**part, "text": ""})
            for piece in split_text(part["text"]):
                emit("response.output_text.delta", **ref, delta=piece, logprobs=[])
            emit("response.output_text.done", **ref, text=part["text"], logprobs=[])
            emit("response.content_part.done", **ref, part=part)
        elif item["type"] == "function_call":
            emit("response.output_item.added", **at, item={**item, "status": "in_progress", "arguments": ""})
            for piece in split_arguments(item["arguments"]):
                emit("response.function_call_arguments.delta", item_id=item["id"], **at, delta=piece)
            emit("response.function_call_arguments.done", item_id=item["id"], **at, arguments=item["arguments"])
        else:
            emit("response.output_item.added", **at, item=item)
        emit("response.output_item.done", **at, item=item)
    emit("response.incomplete" if response["status"] == "incomplete" else "response.completed", response=response)
    return events
