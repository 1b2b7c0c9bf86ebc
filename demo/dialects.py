"""The agents' side of the wire: one transcript per provider API, spoken over aiohttp without any SDK.

A `Transcript` holds a conversation in its API's own shape (OpenAI `messages`, Anthropic `messages` with
content blocks, Gemini `contents`), builds the next request, and reads the answer, JSON or streamed, into an
`Answer`: the text, the tool calls with their argument text as the model wrote it, and the finish reason.
Streams are read the way the SDKs accumulate them (OpenAI deltas by index, Anthropic content blocks, Gemini
chunks whose parts add up).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from toolwatch.demo.tools import declaration

MAX_TOKENS = 1024


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # raw text


@dataclass(frozen=True)
class Answer:
    text: str
    calls: tuple[ToolCall, ...]
    finish_reason: str
    message: Any  # the assistant turn in the API's own shape, as it goes back into the transcript


@dataclass(frozen=True)
class Outcome:
    call: ToolCall
    content: str
    is_error: bool


class Refused(Exception):
    """The API answered with an error status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status


class Transcript(ABC):
    def __init__(self, mount: str, key: str, system: str, task: str, tools: tuple[str, ...]) -> None:
        self.mount = mount  # e.g. "/openai/v1", "/glm", "/anthropic", "/gemini"
        self.key = key
        self.system = system
        self.tools = tools
        self.messages: list[Any] = []
        self.add_user(task)

    @abstractmethod
    def request(self, model: str, stream: bool) -> tuple[str, dict[str, str], dict[str, Any]]:
        """Path under the proxy, headers and JSON body of the next request."""

    @abstractmethod
    def add_user(self, text: str) -> None: ...

    @abstractmethod
    def add_answer(self, answer: Answer) -> None: ...

    @abstractmethod
    def add_results(self, outcomes: list[Outcome], note: str = "") -> None: ...

    @abstractmethod
    def parse(self, body: Any) -> Answer: ...

    @abstractmethod
    async def parse_stream(self, events: AsyncIterator[tuple[str, str]]) -> Answer: ...

    async def send(
        self, http: aiohttp.ClientSession, base_url: str, model: str, stream: bool, headers: dict[str, str]
    ) -> Answer:
        path, own, body = self.request(model, stream)
        async with http.post(base_url + path, json=body, headers={**own, **headers}) as resp:
            if resp.status >= 400:
                raise Refused(resp.status, await resp.text())
            if stream:
                return await self.parse_stream(sse_events(resp.content))
            return self.parse(await resp.json(content_type=None))


async def sse_events(lines: AsyncIterable[bytes]) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) of each server-sent event, from the body's lines."""
    event, data = "", list[str]()
    async for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    if data:
        yield event, "\n".join(data)


class OpenAIChat(Transcript):
    """Chat Completions, for OpenAI itself and OpenAI-compatible upstreams (mounted e.g. at `/glm`)."""

    def request(self, model: str, stream: bool) -> tuple[str, dict[str, str], dict[str, Any]]:
        tools = [
            {"type": "function", "function": {"name": n, "description": d, "parameters": s}}
            for n, d, s in map(declaration, self.tools)
        ]
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "system", "content": self.system}, *self.messages],
            "tools": tools,
            "max_tokens": MAX_TOKENS,
        }
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return f"{self.mount}/chat/completions", {"Authorization": f"Bearer {self.key}"}, body

    def add_user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    def add_answer(self, answer: Answer) -> None:
        self.messages.append(answer.message)

    def add_results(self, outcomes: list[Outcome], note: str = "") -> None:
        for o in outcomes:
            self.messages.append({"role": "tool", "tool_call_id": o.call.id, "content": o.content})
        if note:
            self.add_user(note)

    def parse(self, body: Any) -> Answer:
        choice = body["choices"][0]
        message = choice["message"]
        calls = [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls") or []]
        return self._answer(message.get("content") or "", calls, choice.get("finish_reason") or "")

    async def parse_stream(self, events: AsyncIterator[tuple[str, str]]) -> Answer:
        text, finish = "", ""
        calls: dict[int, list[str]] = {}
        async for _, data in events:
            if data == "[DONE]":
                break
            for choice in json.loads(data).get("choices") or []:
                delta = choice.get("delta") or {}
                text += delta.get("content") or ""
                for tc in delta.get("tool_calls") or []:
                    slot = calls.setdefault(tc["index"], ["", "", ""])
                    fn = tc.get("function") or {}
                    slot[0] = tc.get("id") or slot[0]
                    slot[1] += fn.get("name") or ""
                    slot[2] += fn.get("arguments") or ""
                finish = choice.get("finish_reason") or finish
        return self._answer(text, [tuple(calls[i]) for i in sorted(calls)], finish)

    def _answer(self, text: str, calls: list[Any], finish: str) -> Answer:
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in calls
            ]
        return Answer(text, tuple(ToolCall(*c) for c in calls), finish, message)


class AnthropicMessages(Transcript):
    def request(self, model: str, stream: bool) -> tuple[str, dict[str, str], dict[str, Any]]:
        tools = [{"name": n, "description": d, "input_schema": s} for n, d, s in map(declaration, self.tools)]
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": MAX_TOKENS,
            "system": self.system,
            "messages": self.messages,
            "tools": tools,
        }
        if stream:
            body["stream"] = True
        headers = {"x-api-key": self.key, "anthropic-version": "2023-06-01"}
        return f"{self.mount}/v1/messages", headers, body

    def add_user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    def add_answer(self, answer: Answer) -> None:
        self.messages.append({"role": "assistant", "content": answer.message})

    def add_results(self, outcomes: list[Outcome], note: str = "") -> None:
        blocks: list[dict[str, Any]] = [
            {"type": "tool_result", "tool_use_id": o.call.id, "content": o.content, "is_error": o.is_error}
            for o in outcomes
        ]
        if note:
            blocks.append({"type": "text", "text": note})
        self.messages.append({"role": "user", "content": blocks})

    def parse(self, body: Any) -> Answer:
        blocks = [
            {**b, "input": json.dumps(b.get("input", {}), ensure_ascii=False)} if b.get("type") == "tool_use" else b
            for b in body.get("content") or []
        ]
        return self._answer(blocks, body.get("stop_reason") or "")

    async def parse_stream(self, events: AsyncIterator[tuple[str, str]]) -> Answer:
        blocks: dict[int, dict[str, Any]] = {}
        finish = ""
        async for _, data in events:
            event = json.loads(data)
            kind = event.get("type")
            if kind == "content_block_start":
                block = dict(event["content_block"])
                if block.get("type") == "tool_use":
                    block["input"] = ""
                blocks[event["index"]] = block
            elif kind == "content_block_delta":
                block, delta = blocks[event["index"]], event["delta"]
                if delta.get("type") == "text_delta":
                    block["text"] = block.get("text", "") + delta["text"]
                elif delta.get("type") == "input_json_delta":
                    block["input"] += delta["partial_json"]
            elif kind == "message_delta":
                finish = (event.get("delta") or {}).get("stop_reason") or finish
        return self._answer([blocks[i] for i in sorted(blocks)], finish)

    def _answer(self, blocks: list[dict[str, Any]], finish: str) -> Answer:
        """`blocks` carry tool inputs as text; the transcript gets them parsed (or `{}` when they are not JSON)."""
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        calls = tuple(ToolCall(b["id"], b["name"], b["input"] or "{}") for b in blocks if b.get("type") == "tool_use")
        message = [
            {"type": "tool_use", "id": b["id"], "name": b["name"], "input": _object(b["input"])}
            if b.get("type") == "tool_use"
            else {"type": "text", "text": b.get("text", "")}
            for b in blocks
            if b.get("type") == "tool_use" or b.get("text")
        ]
        return Answer(text, calls, finish, message)


class GeminiContents(Transcript):
    def request(self, model: str, stream: bool) -> tuple[str, dict[str, str], dict[str, Any]]:
        declarations = [{"name": n, "description": d, "parameters": s} for n, d, s in map(declaration, self.tools)]
        body = {
            "contents": self.messages,
            "systemInstruction": {"parts": [{"text": self.system}]},
            "tools": [{"functionDeclarations": declarations}],
            "generationConfig": {"maxOutputTokens": MAX_TOKENS},
        }
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{self.mount}/v1beta/models/{model}:{method}", {"x-goog-api-key": self.key}, body

    def add_user(self, text: str) -> None:
        self.messages.append({"role": "user", "parts": [{"text": text}]})

    def add_answer(self, answer: Answer) -> None:
        self.messages.append({"role": "model", "parts": answer.message})

    def add_results(self, outcomes: list[Outcome], note: str = "") -> None:
        parts: list[dict[str, Any]] = []
        for o in outcomes:
            value = _object(o.content, fallback=None)
            response = value if value is not None else {("error" if o.is_error else "output"): o.content}
            part = {"name": o.call.name, "response": response}
            parts.append({"functionResponse": {"id": o.call.id, **part} if o.call.id else part})
        if note:
            parts.append({"text": note})
        self.messages.append({"role": "user", "parts": parts})

    def parse(self, body: Any) -> Answer:
        return self._answer([body])

    async def parse_stream(self, events: AsyncIterator[tuple[str, str]]) -> Answer:
        return self._answer([json.loads(data) async for _, data in events])

    def _answer(self, chunks: list[Any]) -> Answer:
        text, finish = "", ""
        parts: list[dict[str, Any]] = []
        for chunk in chunks:
            candidate = (chunk.get("candidates") or [{}])[0]
            for part in (candidate.get("content") or {}).get("parts") or []:
                if "functionCall" in part:
                    parts.append(part)
                else:
                    text += part.get("text", "")
            finish = candidate.get("finishReason") or finish
        calls = tuple(
            ToolCall(fc.get("id", ""), fc["name"], json.dumps(fc.get("args", {}), ensure_ascii=False))
            for p in parts
            for fc in [p["functionCall"]]
        )
        message = ([{"text": text}] if text or not parts else []) + parts
        return Answer(text, calls, finish, message)


def _object(text: str, fallback: Any = ...) -> Any:
    """`text` parsed when it is a JSON object, else `fallback` (by default an empty object)."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    return {} if fallback is ... else fallback


TRANSCRIPTS: dict[str, type[Transcript]] = {
    "openai": OpenAIChat,
    "anthropic": AnthropicMessages,
    "gemini": GeminiContents,
}
