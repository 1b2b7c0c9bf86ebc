"""The official SDKs as readers of the wire samples: each reads a sample through a mock HTTP transport (no
socket) and says what it found, and beside it the same projection of our parse. ``test_endpoints`` checks
that the two agree on every response sample an SDK reads as we do; the samples an SDK reads differently
(it raises on an error event, drops a cut one) are listed in ``differs`` and have their own test in the
provider's test module.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import jiter
import openai
from google import genai
from google.genai import types

from toolwatch.providers.base import ParsedResponse, Usage

from .helpers import mock_http

View = dict[str, Any]
MESSAGES: Any = [{"role": "user", "content": "hi"}]


def media_type(streamed: bool) -> str:
    return "text/event-stream" if streamed else "application/json"


def openai_client(body: bytes, content_type: str, status: int = 200) -> openai.OpenAI:
    http = mock_http(body, content_type, status)
    return openai.OpenAI(api_key="x", base_url="http://fake/v1", http_client=http, max_retries=0)


def anthropic_client(body: bytes, content_type: str, status: int = 200) -> anthropic.Anthropic:
    http = mock_http(body, content_type, status)
    return anthropic.Anthropic(api_key="x", base_url="http://fake", http_client=http, max_retries=0)


def genai_client(body: bytes, content_type: str, status: int = 200) -> genai.Client:
    options = types.HttpOptions(base_url="http://fake", httpx_client=mock_http(body, content_type, status))
    return genai.Client(api_key="x", http_options=options)


@dataclass(frozen=True)
class Sdk:
    reads: Callable[[bytes, bool], View]  # (sample, streamed) -> what the SDK found
    ours: Callable[[ParsedResponse, bool], View]  # (our parse, streamed) -> the same projection
    differs: frozenset[str]  # samples the SDK reads differently (or not at all)


# --- openai: Chat Completions -------------------------------------------------------------------


def _chat_reads(data: bytes, streamed: bool) -> View:
    # For the broken-off stream the SDK does not raise: it drops the cut line and returns the partial
    # arguments with finish_reason None, which is what we record too.
    with openai_client(data, media_type(streamed)) as client:
        if streamed:
            with client.chat.completions.stream(model="m", messages=MESSAGES) as s:
                for _ in s:
                    pass
                completion = s.get_final_completion()
        else:
            completion = client.chat.completions.create(model="m", messages=MESSAGES)
    message, usage = completion.choices[0].message, completion.usage
    if usage is None:
        assert streamed  # include_usage was not requested
        counted = Usage()
    else:
        details = usage.prompt_tokens_details
        assert streamed or details is not None
        cached = details.cached_tokens if details else None
        counted = Usage(usage.prompt_tokens - (cached or 0), cached, None, usage.completion_tokens)
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or [] if c.type == "function"]
    return {
        "calls": calls,
        "text": message.content or "",
        "finish": completion.choices[0].finish_reason,
        "usage": counted,
    }


def _chat_ours(ours: ParsedResponse, streamed: bool) -> View:
    calls = [(c.id, c.name, c.raw_arguments) for c in ours.tool_calls]
    return {"calls": calls, "text": ours.text, "finish": ours.finish_reason, "usage": ours.usage}


# --- anthropic: Messages ------------------------------------------------------------------------


def _messages_reads(data: bytes, streamed: bool) -> View:
    # For the broken-off stream the SDK does not raise: it returns the message so far, with the tool input
    # parsed leniently from the fragments that arrived (``{"path": "notes.md"}``) and stop_reason None.
    with anthropic_client(data, media_type(streamed)) as client:
        if streamed:
            with client.messages.stream(model="m", max_tokens=9, messages=MESSAGES) as s:
                message = s.get_final_message()
        else:
            message = client.messages.create(model="m", max_tokens=9, messages=MESSAGES)
    u = message.usage
    return {
        "calls": [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"],
        "text": "\n".join(b.text for b in message.content if b.type == "text"),
        "usage": Usage(u.input_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens, u.output_tokens),
        "finish": message.stop_reason,
    }


def _messages_ours(ours: ParsedResponse, streamed: bool) -> View:
    # the SDK parses cut-off argument text leniently; so does jiter's partial mode
    calls = [(c.id, c.name, jiter.from_json(c.raw_arguments.encode(), partial_mode=streamed)) for c in ours.tool_calls]
    return {"calls": calls, "text": ours.text, "usage": ours.usage, "finish": ours.finish_reason}


# --- openai: Responses --------------------------------------------------------------------------


def _responses_reads(data: bytes, streamed: bool) -> View:
    with openai_client(data, media_type(streamed)) as client:
        if streamed:
            with client.responses.stream(model="m", input="hi") as s:
                for _ in s:
                    pass
                response = s.get_final_response()
        else:
            response = client.responses.create(model="m", input="hi")
    calls = [(o.call_id, o.name, o.arguments) for o in response.output if o.type == "function_call"]
    usage = response.usage
    assert usage is not None
    if streamed:
        return {"calls": calls, "text": response.output_text, "finish": response.status, "out": usage.output_tokens}
    cached = usage.input_tokens_details.cached_tokens
    return {
        "calls": calls,
        "text": response.output_text,
        "ids": (response.model, response.id),
        "usage": Usage(usage.input_tokens - cached, cached, None, usage.output_tokens),
    }


def _responses_ours(ours: ParsedResponse, streamed: bool) -> View:
    calls = [(c.id, c.name, c.raw_arguments) for c in ours.tool_calls]
    if streamed:
        return {"calls": calls, "text": ours.text, "finish": ours.finish_reason, "out": ours.usage.output}
    return {"calls": calls, "text": ours.text, "ids": (ours.model, ours.response_id), "usage": ours.usage}


# --- google-genai: generateContent and streamGenerateContent (alt=sse) ----------------------------


def _gemini_reads(data: bytes, streamed: bool) -> View:
    models = genai_client(data, media_type(streamed)).models
    if streamed:
        responses = list(models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    else:
        responses = [models.generate_content(model="gemini-2.5-flash", contents="hi")]
    calls: list[tuple[str, str]] = []
    ids: list[str] = []
    text, finish = "", None
    for response in responses:
        for candidate in response.candidates or []:
            finish = candidate.finish_reason.value if candidate.finish_reason else finish
            for part in (candidate.content.parts if candidate.content else None) or []:
                if part.function_call is not None:
                    args = json.dumps(part.function_call.args, ensure_ascii=False)
                    calls.append((part.function_call.name or "", args))
                    ids += [part.function_call.id] if part.function_call.id else []
                elif part.text is not None and not part.thought:
                    text += part.text
    view: View = {"calls": calls, "text": text, "finish": finish}
    if not streamed:
        usage = responses[0].usage_metadata
        assert usage is not None
        output = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
        view |= {"ids": ids, "model": (responses[0].model_version, responses[0].response_id), "out": output}
    return view


def _gemini_ours(ours: ParsedResponse, streamed: bool) -> View:
    calls = [(c.name, json.dumps(json.loads(c.raw_arguments), ensure_ascii=False)) for c in ours.tool_calls]
    view: View = {"calls": calls, "text": ours.text, "finish": ours.finish_reason}
    if not streamed:
        given = [c.id for c in ours.tool_calls if not c.id.startswith("gemini-")]  # the synthetic ones are ours
        view |= {"ids": given, "model": (ours.model, ours.response_id), "out": ours.usage.output}
    return view


_GEMINI = Sdk(
    _gemini_reads,
    _gemini_ours,
    frozenset(
        {
            "blocked.json",  # no candidate: the block reason is checked on its own
            "error_invalid_argument.json",  # the SDK raises
            "stream_broken_off.sse",  # the SDK raises on the cut chunk
            "array_text.json",  # the SDK never asks for the JSON array stream
            "array_function_calls.json",
            "array_broken_off.json",
        }
    ),
)
SDKS: dict[str, Sdk] = {
    "chat_completions": Sdk(_chat_reads, _chat_ours, frozenset({"stream_error.sse", "error_invalid_request.json"})),
    "messages": Sdk(
        _messages_reads, _messages_ours, frozenset({"stream_overloaded_error.sse", "error_invalid_request.json"})
    ),
    "responses": Sdk(
        _responses_reads,
        _responses_ours,
        frozenset({"stream_failed.sse", "stream_broken_off.sse", "error_invalid_request.json"}),
    ),
    "generate_content": _GEMINI,
    "stream_generate_content": _GEMINI,
}
