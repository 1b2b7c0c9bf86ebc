"""What a scripted model reads in a request: one provider-neutral view of the conversation so far.

`read(api, received)` turns an OpenAI Chat Completions, Anthropic Messages or Gemini request into a `View`:
the system prompt, the task (the first user message), the declared tool names, and one `Turn` per earlier
assistant reply with the calls it made, the results the agent sent back for them and any text the agent
added. Ids are read only to pair results with calls: the scripted models never decide on them, so replies
stay reproducible whatever order concurrent conversations arrive in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from toolwatch.demo import wire_gemini
from toolwatch.demo.script import Received
from toolwatch.demo.tools import IN_TEXT_NOTE, is_failure

Api = Literal["openai", "anthropic", "gemini"]


@dataclass(frozen=True)
class Call:
    name: str
    arguments: str  # raw text as the model wrote it
    id: str = ""


@dataclass(frozen=True)
class Result:
    name: str  # of the call it answers ("" when no call matched)
    content: str
    failed: bool


@dataclass
class Turn:
    """One assistant reply and what the agent answered to it."""

    text: str
    calls: list[Call]
    results: list[Result] = field(default_factory=list)
    note: str = ""  # the agent's own text after the reply

    @property
    def failed(self) -> bool:
        return any(r.failed for r in self.results) or IN_TEXT_NOTE in self.note


@dataclass(frozen=True)
class View:
    api: Api
    model: str
    stream: bool
    system: str
    task: str
    tools: tuple[str, ...]
    turns: tuple[Turn, ...]

    @property
    def last(self) -> Turn | None:
        return self.turns[-1] if self.turns else None

    def fingerprint(self) -> str:
        """What the conversation said, without ids: the seed of the model's next decision."""
        parts = [self.system, self.task]
        for t in self.turns:
            parts += [t.text, *(c.name + c.arguments for c in t.calls), *(r.content for r in t.results), t.note]
        return "\x1f".join(parts)


def read(api: Api, received: Received, model: str) -> View:
    body = received.json if isinstance(received.json, dict) else {}
    reader = {"openai": _openai, "anthropic": _anthropic, "gemini": _gemini}[api]
    system, task, turns = reader(body)
    stream = wire_gemini.is_stream(received.path) if api == "gemini" else received.stream
    return View(api, model, stream, system, task, _tool_names(api, body), tuple(turns))


def _tool_names(api: Api, body: dict[str, Any]) -> tuple[str, ...]:
    names: list[str] = []
    for tool in _list(body.get("tools")):
        if api == "openai":
            names.append(str(_dict(tool.get("function")).get("name", "")))
        elif api == "anthropic":
            names.append(str(tool.get("name", "")))
        else:
            names += [str(_dict(f).get("name", "")) for f in _list(tool.get("functionDeclarations"))]
    return tuple(n for n in names if n)


class _Builder:
    def __init__(self) -> None:
        self.task = ""
        self.turns: list[Turn] = []

    def user_text(self, text: str) -> None:
        if not self.turns and not self.task:
            self.task = text
        elif self.turns:
            self.turns[-1].note += text

    def assistant(self, text: str, calls: list[Call]) -> None:
        self.turns.append(Turn(text, calls))

    def result(self, call_id: str, content: str, is_error: bool = False) -> None:
        if not self.turns:
            return
        turn = self.turns[-1]
        taken = len(turn.results)
        match = next((c for c in turn.calls if call_id and call_id in (c.id, c.name)), None)
        if match is None and taken < len(turn.calls):
            match = turn.calls[taken]
        turn.results.append(Result(match.name if match else "", content, is_error or is_failure(content)))


def _openai(body: dict[str, Any]) -> tuple[str, str, list[Turn]]:
    b, system = _Builder(), ""
    for m in _list(body.get("messages")):
        role, content = m.get("role"), _text(m.get("content"))
        if role in ("system", "developer"):
            system += content
        elif role == "user":
            b.user_text(content)
        elif role == "assistant":
            calls = [
                Call(str(fn.get("name", "")), str(fn.get("arguments", "")), str(tc.get("id", "")))
                for tc in _list(m.get("tool_calls"))
                for fn in [_dict(tc.get("function"))]
            ]
            b.assistant(content, calls)
        elif role == "tool":
            b.result(str(m.get("tool_call_id", "")), content)
    return system, b.task, b.turns


def _anthropic(body: dict[str, Any]) -> tuple[str, str, list[Turn]]:
    b = _Builder()
    for m in _list(body.get("messages")):
        blocks = m.get("content")
        blocks = [{"type": "text", "text": blocks}] if isinstance(blocks, str) else _list(blocks)
        if m.get("role") == "assistant":
            text = "".join(str(x.get("text", "")) for x in blocks if x.get("type") == "text")
            calls = [
                Call(str(x.get("name", "")), json.dumps(x.get("input"), ensure_ascii=False), str(x.get("id", "")))
                for x in blocks
                if x.get("type") == "tool_use"
            ]
            b.assistant(text, calls)
            continue
        for x in blocks:
            if x.get("type") == "tool_result":
                b.result(str(x.get("tool_use_id", "")), _text(x.get("content")), bool(x.get("is_error")))
            elif x.get("type") == "text":
                b.user_text(str(x.get("text", "")))
    return _text(body.get("system")), b.task, b.turns


def _gemini(body: dict[str, Any]) -> tuple[str, str, list[Turn]]:
    b = _Builder()
    for content in _list(body.get("contents")):
        parts = _list(content.get("parts"))
        if content.get("role") == "model":
            text = "".join(str(p.get("text", "")) for p in parts if "text" in p)
            calls = [
                Call(str(fc.get("name", "")), json.dumps(fc.get("args", {}), ensure_ascii=False), str(fc.get("id", "")))
                for p in parts
                if (fc := _dict(p.get("functionCall")))
            ]
            b.assistant(text, calls)
            continue
        for p in parts:
            if fr := _dict(p.get("functionResponse")):
                response = fr.get("response")
                text = json.dumps(response, ensure_ascii=False)
                b.result(str(fr.get("id") or fr.get("name") or ""), text)
            elif "text" in p:
                b.user_text(str(p["text"]))
    system = "".join(str(p.get("text", "")) for p in _list(_dict(body.get("systemInstruction")).get("parts")))
    return system, b.task, b.turns


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(str(p.get("text", "")) for p in _list(content))
