"""Gemini ``generateContent`` and ``streamGenerateContent``: request and response parsers.

The model is named in the path (``.../models/gemini-2.5-flash:generateContent``), not in the body, so the
requested model comes from ``paths.model_from_path``; the returned one is ``modelVersion``. Key names are
read in both JSON spellings the API accepts (``functionCall`` and ``function_call``).

Tool calls are ``functionCall`` parts of candidate 0 (other candidates get a note): ``raw_arguments`` is
the ``args`` object as compact JSON (``{}`` when a call has no ``args``). Tool results are
``functionResponse`` parts; ``is_error`` is True when the ``response`` object has an ``error`` key and
no ``output`` key (the documented convention), else None. The result text is ``output`` (or ``result``)
when it is a string, else the ``response`` object as compact JSON.

Call ids: a ``functionCall`` has an ``id`` only on newer models. Without one, the call gets a synthetic
id that the response and every later request resending the turn compute alike: a hash of the turn's
first thought signature up to the call (an opaque value unique to one generation, present when thinking
is on), the call's position in its turn, its name and its arguments. A ``functionResponse`` without an
id answers the call of the same name, in order, of the model turn before it. Without a thought signature,
identical calls at the same position of their turn share an id.

``finishReason`` is kept as sent: Gemini says ``STOP`` also when it returns function calls (a final
answer is a response without tool calls). When the prompt is blocked there is no candidate and the
finish reason is ``promptFeedback.blockReason``. Usage: ``promptTokenCount`` includes
``cachedContentTokenCount``; output is ``candidatesTokenCount`` plus ``thoughtsTokenCount``, as OpenAI's
``completion_tokens`` includes reasoning. Parts other than text and function calls (thoughts, inline
data, code execution) are counted in ``skipped``.

Two transports: ``alt=sse`` (SSE ``data:`` events, each a response chunk; the stream is complete once a
chunk carries a finish reason) and, without it, one JSON array of chunks, which ``GeminiParser`` splits
as it arrives; that parser also reads a single object (``generateContent``). ``text`` joins text parts
with "" in both, as streamed text arrives in pieces.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from toolwatch.providers._wire import as_dict, as_int, as_list, as_str, compact_json, loads, snippet
from toolwatch.providers.accumulate import Accumulator, RequestFields, SSEEventParser
from toolwatch.providers.base import ParsedRequest, ParsedResponse, ToolCallOut, ToolDecl, ToolResultIn, Usage
from toolwatch.providers.jsonstream import ObjectSplitter

__all__ = [
    "GeminiParser",
    "GeminiStreamParser",
    "parse_request",
    "parse_stream_request",
    "parse_usage",
    "synthetic_call_id",
]

_OPENAPI_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    return obj[camel] if camel in obj else obj.get(snake)


def synthetic_call_id(anchor: str, position: int, name: str, args: object) -> str:
    """The id of a function call that came without one (see the module docstring)."""
    try:
        canonical = orjson.dumps(args, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        canonical = compact_json(args).encode()
    digest = hashlib.blake2b(digest_size=10)
    for piece in (anchor.encode(), str(position).encode(), name.encode(), canonical):
        digest.update(piece + b"\x1f")
    return "gemini-" + digest.hexdigest()


def _lower_types(schema: object) -> object:
    """Gemini's OpenAPI-style ``parameters`` may spell types in capitals (``OBJECT``); JSON Schema
    wants them in lower case. Nothing else is changed."""
    if isinstance(schema, list):
        return [_lower_types(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str) and value in _OPENAPI_TYPES:
            out[key] = value.lower()
        else:
            out[key] = _lower_types(value)
    return out


def _parts(content: object) -> list[dict[str, Any]]:
    return [as_dict(p) or {} for p in as_list((as_dict(content) or {}).get("parts"))]


def _text(parts: list[dict[str, Any]], sep: str = "") -> str:
    return sep.join(as_str(p.get("text")) or "" for p in parts if "text" in p and p.get("thought") is not True)


def _signature(part: dict[str, Any]) -> str | None:
    return as_str(_get(part, "thoughtSignature", "thought_signature")) or None


@dataclass
class _TurnCalls:
    """Assigns ids to the function calls of one model turn, in order."""

    anchor: str = ""
    position: int = 0

    def call_id(self, part: dict[str, Any], call: dict[str, Any]) -> str:
        self.anchor = self.anchor or _signature(part) or ""
        position, self.position = self.position, self.position + 1
        given = as_str(call.get("id"))
        if given:
            return given
        return synthetic_call_id(self.anchor, position, as_str(call.get("name")) or "", call.get("args", {}))

    def part(self, part: dict[str, Any]) -> None:
        """A part that is not a function call may still carry the turn's first signature."""
        self.anchor = self.anchor or _signature(part) or ""


class _Unanswered:
    """The calls of one name in a model turn that no functionResponse has answered yet, in order. A
    response with an id answers that call, one without answers the earliest (a list would do, but its
    ``remove`` and ``pop(0)`` made a request resending 25,000 calls take 10 s)."""

    def __init__(self) -> None:
        self._order: deque[str] = deque()
        self._left: dict[str, int] = {}  # unanswered calls by id
        self._answered: dict[str, int] = {}  # calls answered by id that ``_order`` still holds

    def add(self, call_id: str) -> None:
        self._order.append(call_id)
        self._left[call_id] = self._left.get(call_id, 0) + 1

    def answer(self, call_id: str) -> None:
        """The earliest unanswered call with this id (if any) is answered."""
        if self._left.get(call_id, 0) > 0:
            self._left[call_id] -= 1
            self._answered[call_id] = self._answered.get(call_id, 0) + 1

    def first(self) -> str | None:
        """The id of the earliest unanswered call, now answered; None if every call is."""
        while self._order:
            call_id = self._order.popleft()
            if self._answered.get(call_id, 0) > 0:  # the earliest calls of an id are those answered by it
                self._answered[call_id] -= 1
                continue
            self._left[call_id] -= 1
            return call_id
        return None


def _declare(req: RequestFields) -> None:
    """Function declarations, with their schema; built-in tools (``googleSearch``, ...) by their kind."""
    for entry in as_list(req.body.get("tools")):
        tool = as_dict(entry) or {}
        for key, value in tool.items():
            if key not in ("functionDeclarations", "function_declarations"):
                req.tools.append(ToolDecl(key))  # googleSearch, codeExecution, ...: declared by their kind
                continue
            for item in as_list(value):
                fn = as_dict(item) or {}
                name = as_str(fn.get("name"))
                schema = _get(fn, "parametersJsonSchema", "parameters_json_schema")
                if name is not None and schema is None and fn.get("parameters") is not None:
                    try:
                        schema = _lower_types(fn.get("parameters"))
                    except RecursionError:  # nested near the JSON parser's own limit: kept as sent
                        schema = fn.get("parameters")
                req.declare(item, name, schema, what="function declaration")


def _result(response: object) -> tuple[str, bool | None]:
    obj = as_dict(response)
    if obj is None:
        return ("" if response is None else compact_json(response)), None
    is_error = True if "error" in obj and "output" not in obj else None
    for key in ("output", "result"):
        if isinstance(obj.get(key), str) and len(obj) == 1:
            return obj[key], is_error
    return compact_json(obj), is_error


def parse_request(body: bytes, stream: bool = False) -> ParsedRequest:
    """Read what a generateContent request declares and resends; never raises. ``stream`` is set by the
    endpoint (``streamGenerateContent``), since the body does not say."""
    req = RequestFields.load(body)
    if isinstance(req, ParsedRequest):
        return replace(req, stream=stream)
    _declare(req)
    req.system.append(_text(_parts(_get(req.body, "systemInstruction", "system_instruction")), "\n"))
    answered: defaultdict[str, _Unanswered] = defaultdict(_Unanswered)  # the last model turn's calls, by name
    contents = req.turns("contents")
    for entry in contents:
        content = as_dict(entry) or {}
        parts = _parts(content)
        if content.get("role") == "model":
            turn, ids, answered = _TurnCalls(), [], defaultdict(_Unanswered)
            for part in parts:
                call = as_dict(_get(part, "functionCall", "function_call"))
                if call is None:
                    turn.part(part)
                    continue
                call_id = turn.call_id(part, call)
                ids.append(call_id)
                answered[as_str(call.get("name")) or ""].add(call_id)
            req.prior += ids
            if req.reply_text is None and req.first_user is not None:
                req.reply_text, req.reply_ids = _text(parts), tuple(ids)
            continue
        responses = [r for p in parts if (r := as_dict(_get(p, "functionResponse", "function_response")))]
        for response in responses:
            name = as_str(response.get("name")) or ""
            calls = answered.get(name)
            answers = as_str(response.get("id"))
            if answers:
                if calls is not None:
                    calls.answer(answers)
            elif calls is not None and (first := calls.first()) is not None:
                answers = first
            else:
                req.problems.append(f"functionResponse {snippet(name)} answers no call of the turn before it")
                answers = synthetic_call_id("result", len(req.results), name, response.get("response"))
            text, is_error = _result(response.get("response"))
            req.results.append(ToolResultIn(answers, text, is_error))
        if req.first_user is None and not responses:
            req.first_user = _text(parts, "\n")
    return req.result(len(contents), stream=stream)


def parse_stream_request(body: bytes) -> ParsedRequest:
    return parse_request(body, stream=True)


def parse_usage(value: object) -> Usage | None:
    """Normalise ``usageMetadata`` (see the module docstring); None if there is none."""
    usage = as_dict(value)
    if usage is None:
        return None
    prompt = as_int(_get(usage, "promptTokenCount", "prompt_token_count"))
    cached = as_int(_get(usage, "cachedContentTokenCount", "cached_content_token_count"))
    candidates = as_int(_get(usage, "candidatesTokenCount", "candidates_token_count"))
    thoughts = as_int(_get(usage, "thoughtsTokenCount", "thoughts_token_count"))
    output = None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
    return Usage(
        input_uncached=prompt - (cached or 0) if prompt is not None else None,
        cache_read=cached,
        cache_write=None,
        output=output,
    )


def gemini_error(obj: dict[str, Any]) -> tuple[str | None, str | None] | None:
    """``(status or code, message)`` of ``{"error": {"code": 400, "message": ..., "status": ...}}``."""
    if "error" not in obj or obj["error"] is None:
        return None
    err = as_dict(obj["error"])
    if err is None:
        return None, compact_json(obj["error"])
    code = as_int(err.get("code"))
    kind = as_str(err.get("status")) or (str(code) if code is not None else as_str(err.get("code")))
    return kind, as_str(err.get("message"))


@dataclass
class _Chunks(Accumulator):
    """Candidate 0 over the chunks of one response (a whole body is one chunk)."""

    turn: _TurnCalls = field(default_factory=_TurnCalls)
    chunks: int = 0

    def chunk(self, data: str | bytes) -> list[ToolCallOut]:
        obj, problem = loads(data)
        resp = as_dict(obj)
        if resp is None:
            self.note(f"chunk is not a JSON object ({problem}): {snippet(data)}")
            return []
        self.chunks += 1
        err = gemini_error(resp)
        if err is not None:
            self.error = err
            return []
        self.model = as_str(_get(resp, "modelVersion", "model_version")) or self.model
        self.response_id = as_str(_get(resp, "responseId", "response_id")) or self.response_id
        self.usage = parse_usage(_get(resp, "usageMetadata", "usage_metadata")) or self.usage
        feedback = as_dict(_get(resp, "promptFeedback", "prompt_feedback")) or {}
        blocked = as_str(_get(feedback, "blockReason", "block_reason"))
        candidates = as_list(resp.get("candidates"))
        if blocked and not candidates:
            self.finish_reason = blocked
        found: list[ToolCallOut] = []
        for entry in candidates:
            candidate = as_dict(entry) or {}
            if as_int(candidate.get("index")) not in (None, 0):
                self.note_once("candidates other than index 0 ignored")
                continue
            self.finish_reason = as_str(_get(candidate, "finishReason", "finish_reason")) or self.finish_reason
            for part in _parts(candidate.get("content")):
                found += self._part(part)
        return found

    def _part(self, part: dict[str, Any]) -> list[ToolCallOut]:
        call = as_dict(_get(part, "functionCall", "function_call"))
        if call is not None:
            name = as_str(call.get("name"))
            if name is None:
                self.note(f"function call {len(self.calls)} has no name")
            args = call["args"] if "args" in call else {}
            out = ToolCallOut(len(self.calls), self.turn.call_id(part, call), name or "", compact_json(args))
            self.calls.append(out)
            return [out]
        self.turn.part(part)
        if "text" in part and part.get("thought") is not True:
            self.text.append(as_str(part.get("text")) or "")
        elif "text" in part or set(part) - {"thoughtSignature", "thought_signature"}:
            self.skipped += 1  # a thought, inline data, executable code, ...
        return []


class GeminiParser:
    """A JSON body: one response object (``generateContent``), or the JSON array of chunks that
    ``streamGenerateContent`` sends without ``alt=sse``. ``feed`` reports function calls as the objects
    holding them complete; ``complete`` means the whole object, or the closed array, arrived."""

    def __init__(self) -> None:
        self._split = ObjectSplitter()
        self._acc = _Chunks()

    def feed(self, chunk: bytes) -> list[ToolCallOut]:
        found: list[ToolCallOut] = []
        for obj in self._split.feed(chunk):
            found += self._acc.chunk(obj)
        return found

    def finish(self) -> ParsedResponse:
        split = self._split
        notes = split.notes()
        if not split.objects and not notes:
            notes.append("response body holds no JSON object")
        complete = split.array_closed if split.array_opened else split.objects == 1 and not notes
        self._acc.errors += notes
        return self._acc.result(complete)


class GeminiStreamParser(SSEEventParser):
    """``alt=sse``: each ``data:`` event is a response chunk. ``complete`` means a chunk carried a finish
    reason (or a prompt block reason); the stream has no other end marker."""

    _acc: _Chunks

    def __init__(self) -> None:
        super().__init__()
        self._acc = _Chunks()

    def _event(self, name: str, data: str, done: list[ToolCallOut]) -> None:
        done += self._acc.chunk(data)

    def _close(self) -> bool:
        complete = self._acc.finish_reason is not None
        if not complete and self._acc.error is None:
            self._acc.note("stream ended before a chunk with a finish reason")
        return complete
