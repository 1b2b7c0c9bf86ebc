"""Which parser handles an exchange: endpoint names, and one registry entry per endpoint.

``endpoint_for(api, path)`` names the endpoint from the path's ending (so a base-URL prefix such as
``/openai/v1`` or an Azure deployment path does not matter, and the query string is ignored). The name
then selects an ``Endpoint`` in ``ENDPOINTS``: a request parser and a response parser factory for each
transport. Supporting another API means adding a suffix to ``ROUTES`` and an entry to ``ENDPOINTS``;
nothing else dispatches on provider names.

Azure OpenAI speaks the OpenAI wire format, so ``api = "azure"`` routes to the same parsers (its
deployment paths end the same way). Gemini endpoints end in ``:generateContent`` and
``:streamGenerateContent`` (the colon is part of the path); Gemini's OpenAI-compatible
``.../openai/chat/completions`` is Chat Completions. Which transport a response used is told by its
content type: ``text/event-stream`` is SSE, anything else a JSON body, which for
``streamGenerateContent`` without ``alt=sse`` is a JSON array of chunks (``gemini.GeminiParser`` reads both).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from toolwatch.providers import anthropic_messages, gemini, openai_chat, openai_responses
from toolwatch.providers.base import ParsedRequest, ResponseParser
from toolwatch.schemas.vocab import Endpoint as EndpointName

__all__ = ["ENDPOINTS", "ROUTES", "Endpoint", "endpoint_for", "parse_request", "response_parser"]


@dataclass(frozen=True)
class Endpoint:
    parse_request: Callable[[bytes], ParsedRequest]
    json_parser: Callable[[], ResponseParser]
    stream_parser: Callable[[], ResponseParser]


ENDPOINTS: dict[EndpointName, Endpoint] = {
    "chat_completions": Endpoint(
        openai_chat.parse_request, openai_chat.ChatCompletionParser, openai_chat.ChatCompletionStreamParser
    ),
    "messages": Endpoint(
        anthropic_messages.parse_request,
        anthropic_messages.MessagesParser,
        anthropic_messages.MessagesStreamParser,
    ),
    "responses": Endpoint(
        openai_responses.parse_request, openai_responses.ResponsesParser, openai_responses.ResponsesStreamParser
    ),
    "generate_content": Endpoint(gemini.parse_request, gemini.GeminiParser, gemini.GeminiStreamParser),
    "stream_generate_content": Endpoint(gemini.parse_stream_request, gemini.GeminiParser, gemini.GeminiStreamParser),
}

# api -> (path suffix, endpoint name); the first suffix that matches wins
_OPENAI_ROUTES: tuple[tuple[str, EndpointName], ...] = (
    ("/chat/completions", "chat_completions"),
    ("/responses", "responses"),
)
ROUTES: dict[str, tuple[tuple[str, EndpointName], ...]] = {
    "openai": _OPENAI_ROUTES,
    "azure": _OPENAI_ROUTES,
    "anthropic": (("/messages", "messages"),),
    "gemini": (
        (":generateContent", "generate_content"),
        (":streamGenerateContent", "stream_generate_content"),
        ("/chat/completions", "chat_completions"),
    ),
}


@lru_cache(maxsize=4096)  # a deployment calls a handful of paths, over and over
def endpoint_for(api: str, path: str) -> EndpointName | None:
    """The endpoint name for a request path of ``api``, or None if no parser is registered for it."""
    path = path.partition("?")[0].partition("#")[0].rstrip("/")
    for suffix, name in ROUTES.get(api, ()):
        if path.endswith(suffix):
            return name
    return None


def parse_request(endpoint: EndpointName, body: bytes) -> ParsedRequest:
    """Parse a request body with the endpoint's parser; an unknown endpoint gives ``error`` set."""
    entry = ENDPOINTS.get(endpoint)
    if entry is None:
        return ParsedRequest(error=f"no parser registered for endpoint {endpoint!r}")
    return entry.parse_request(body)


def response_parser(endpoint: EndpointName, streamed: bool) -> ResponseParser:
    """A fresh response parser for one exchange. Raises KeyError for an unregistered endpoint, which
    is a programming error: callers get endpoint names from ``endpoint_for``."""
    entry = ENDPOINTS[endpoint]
    return entry.stream_parser() if streamed else entry.json_parser()
