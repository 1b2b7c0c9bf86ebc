"""What a fake upstream is told to answer, and what it was asked.

`Reply` is provider-neutral: the same script can be served as OpenAI Chat
Completions, OpenAI Responses, Anthropic Messages or Gemini, depending on the
path it is asked on.
`Received` is one captured request, kept in the order it arrived.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy


@dataclass(frozen=True)
class ToolCallSpec:
    """One tool call the fake model makes.

    `arguments` is the raw argument text exactly as the model would stream it;
    it may be invalid JSON on purpose. `id` defaults to a per-server counter
    (`call_1`, `toolu_1`, ...).
    """

    name: str
    arguments: str = "{}"
    id: str | None = None


@dataclass(frozen=True)
class Usage:
    """Token counts, in Anthropic's terms.

    `input_tokens` excludes cache reads and writes. OpenAI bodies report
    `prompt_tokens = input_tokens + cache_read_tokens + cache_write_tokens`
    with `prompt_tokens_details.cached_tokens = cache_read_tokens`.
    """

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    Body shape: `text` and `tool_calls` (text comes first). A `status` other
    than 200 sends a provider-shaped error body instead. `raw` replaces the
    whole body with these bytes (status and headers still apply).

    Faults, applied to the body bytes as they are written: `hang` never
    answers; `hang_after_bytes` / `drop_after_bytes` write that many body
    bytes, then stall forever / close the connection abruptly. `chunk_size`
    re-splits the body into writes of that many bytes (mid-line, mid-UTF-8);
    without it a stream is written one SSE event per write. Writes are not
    guaranteed to arrive as separate reads unless `chunk_delay` > 0.
    `garbage` is inserted before the last event of a stream (before
    `data: [DONE]` or `event: message_stop`), or appended to a JSON body.
    """

    text: str = ""
    tool_calls: tuple[ToolCallSpec, ...] = ()
    status: int = 200
    error_type: str | None = None
    error_message: str | None = None
    error_code: str | None = None  # OpenAI only, e.g. "context_length_exceeded"
    finish_reason: str | None = None  # sent verbatim; use the provider's vocabulary
    model: str | None = None  # None: echo the requested model
    usage: Usage | None = None  # None: `default_usage`
    headers: Mapping[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    chunk_size: int | None = None
    chunk_delay: float = 0.0
    hang: bool = False
    hang_after_bytes: int | None = None
    drop_after_bytes: int | None = None
    garbage: bytes | None = None

    def __post_init__(self) -> None:
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        if self.hang_after_bytes is not None and self.drop_after_bytes is not None:
            raise ValueError("hang_after_bytes and drop_after_bytes are exclusive")


@dataclass(frozen=True)
class ToolResult:
    """A tool result the client sent back, as found in a request's messages."""

    call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class Received:
    """One request as the fake upstream saw it."""

    method: str
    path: str  # with query string
    headers: CIMultiDictProxy[str]
    body: bytes
    json: Any  # parsed body, or None when it is not JSON

    @classmethod
    def capture(cls, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Received:
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        return cls(method, path, CIMultiDictProxy(CIMultiDict(headers)), body, parsed)

    @property
    def stream(self) -> bool:
        return isinstance(self.json, dict) and self.json.get("stream") is True

    @property
    def model(self) -> str | None:
        model = self.json.get("model") if isinstance(self.json, dict) else None
        return model if isinstance(model, str) else None

    @property
    def messages(self) -> list[Any]:
        messages = self.json.get("messages") if isinstance(self.json, dict) else None
        return messages if isinstance(messages, list) else []

    @property
    def items(self) -> list[Any]:
        """Responses API ``input`` items (a string input is one user message)."""
        value = self.json.get("input") if isinstance(self.json, dict) else None
        if isinstance(value, str):
            return [{"type": "message", "role": "user", "content": value}]
        return value if isinstance(value, list) else []

    @property
    def contents(self) -> list[Any]:
        """Gemini ``contents``."""
        value = self.json.get("contents") if isinstance(self.json, dict) else None
        return value if isinstance(value, list) else []

    def assistant_turns(self) -> int:
        """How many assistant turns the conversation already holds: assistant messages, Gemini ``model``
        contents, or runs of Responses output items. A Responses request that continues from
        ``previous_response_id`` holds only its new items, so its earlier turns are not counted."""
        turns = sum(1 for m in self.messages if isinstance(m, dict) and m.get("role") == "assistant")
        turns += sum(1 for c in self.contents if isinstance(c, dict) and c.get("role") == "model")
        in_run = False
        for item in self.items:
            kind = item.get("type", "message") if isinstance(item, dict) else None
            produced = kind in _OUTPUT_ITEMS or (
                kind == "message" and isinstance(item, dict) and item.get("role") == "assistant"
            )
            turns += produced and not in_run
            in_run = produced
        return turns

    def tool_results(self) -> list[ToolResult]:
        """Tool results in the request: OpenAI `role: tool` messages, Anthropic `tool_result` blocks,
        Responses `function_call_output` items, Gemini `functionResponse` parts (whose call id is the
        part's `id`, else the function name)."""
        results: list[ToolResult] = []
        for item in self.items:
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                output = item.get("output")
                text = output if isinstance(output, str) else _text_of(output)
                results.append(ToolResult(str(item.get("call_id")), text))
        for content in self.contents:
            parts = content.get("parts") if isinstance(content, dict) else None
            for part in parts if isinstance(parts, list) else []:
                fr = part.get("functionResponse") if isinstance(part, dict) else None
                if isinstance(fr, dict):
                    call_id = fr.get("id") or fr.get("name")
                    results.append(ToolResult(str(call_id), dumps(fr.get("response")).decode()))
        for message in self.messages:
            if not isinstance(message, dict):
                continue
            if message.get("role") == "tool":
                results.append(ToolResult(str(message.get("tool_call_id")), _text_of(message.get("content"))))
                continue
            content = message.get("content")
            if message.get("role") != "user" or not isinstance(content, list):
                continue
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    results.append(
                        ToolResult(
                            str(block.get("tool_use_id")),
                            _text_of(block.get("content")),
                            bool(block.get("is_error", False)),
                        )
                    )
        return results


_OUTPUT_ITEMS = frozenset({"function_call", "custom_tool_call", "reasoning"})


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


ReplyFunction = Callable[[Received], Reply]


def by_turn(*turns: Reply, after: Reply | None = None) -> ReplyFunction:
    """Script an agent loop: answer with `turns[k]` when the request already holds k assistant messages.

    Unlike a queue, this is right for retries and for many conversations in
    flight at once. Past the last turn it answers `after` (default: the last turn).
    """
    if not turns:
        raise ValueError("by_turn needs at least one reply")
    last = after if after is not None else turns[-1]

    def choose(received: Received) -> Reply:
        k = received.assistant_turns()
        return turns[k] if k < len(turns) else last

    return choose


def default_usage(reply: Reply, received: Received) -> Usage:
    """Deterministic token counts: about four bytes a token, never zero."""
    if reply.usage is not None:
        return reply.usage
    produced = len(reply.text.encode()) + sum(
        len(c.name.encode()) + len(c.arguments.encode()) for c in reply.tool_calls
    )
    return Usage(input_tokens=max(1, len(received.body) // 4), output_tokens=max(1, produced // 4))


# Fragment lengths cycle through these; uneven on purpose, so that splits land
# inside keys, escapes and multi-byte characters.
_ARGUMENT_STEPS = (1, 5, 2, 9, 3, 13, 4)
_TEXT_STEPS = (4, 1, 7, 3, 6)


def split_text(text: str, steps: tuple[int, ...] = _TEXT_STEPS) -> list[str]:
    """Split `text` by characters into uneven, non-empty pieces (none for empty text)."""
    pieces: list[str] = []
    i = 0
    while i < len(text):
        step = steps[len(pieces) % len(steps)]
        pieces.append(text[i : i + step])
        i += step
    return pieces


def split_arguments(arguments: str) -> list[str]:
    return split_text(arguments, _ARGUMENT_STEPS)


class Ids:
    """Per-server counters for ids that must be unique and deterministic."""

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}

    def count(self, prefix: str) -> int:
        n = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = n
        return n

    def next(self, prefix: str) -> str:
        return f"{prefix}{self.count(prefix)}"


def dumps(value: Any) -> bytes:
    """Compact JSON with raw UTF-8, as both providers send it."""
    return orjson.dumps(value)
