"""registry: endpoint names from path endings, and dispatch through the ENDPOINTS dict."""

from __future__ import annotations

import pytest

from toolwatch.providers import registry
from toolwatch.providers.anthropic_messages import MessagesParser, MessagesStreamParser
from toolwatch.providers.base import ParsedRequest, ParsedResponse, ToolCallOut
from toolwatch.providers.gemini import GeminiParser, GeminiStreamParser
from toolwatch.providers.openai_chat import ChatCompletionParser, ChatCompletionStreamParser
from toolwatch.providers.openai_responses import ResponsesParser, ResponsesStreamParser

from .helpers import fixture


@pytest.mark.parametrize(
    ("api", "path", "expected"),
    [
        ("openai", "/v1/chat/completions", "chat_completions"),
        ("openai", "/chat/completions", "chat_completions"),
        ("openai", "/api/openai/v1/chat/completions?foo=bar", "chat_completions"),
        ("openai", "/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21", "chat_completions"),
        ("openai", "/v1/chat/completions/", "chat_completions"),
        ("openai", "/v1/completions", None),
        ("openai", "/v1/chat/completions/chatcmpl-123/messages", None),
        ("openai", "/v1/responses", "responses"),
        ("openai", "/v1/responses/resp_123", None),
        ("openai", "/v1/responses/resp_123/input_items", None),
        ("openai", "/api/paas/v4/chat/completions", "chat_completions"),
        ("azure", "/openai/deployments/gpt4o/chat/completions", "chat_completions"),
        ("azure", "/openai/deployments/gpt4o/responses", "responses"),
        ("azure", "/openai/v1/chat/completions", "chat_completions"),
        ("azure", "/openai/v1/responses", "responses"),
        ("azure", "/openai/deployments/gpt4o/embeddings", None),
        ("gemini", "/v1beta/models/gemini-2.5-flash:generateContent", "generate_content"),
        ("gemini", "/v1/models/gemini-2.5-pro:streamGenerateContent", "stream_generate_content"),
        ("gemini", "/v1beta/models/gemini-2.5-flash:countTokens", None),
        ("gemini", "/v1beta/models/gemini-2.5-flash", None),
        ("gemini", "/v1beta/models", None),
        ("gemini", "/v1beta/openai/chat/completions", "chat_completions"),
        ("gemini", "/v1beta/models/text-embedding-004:embedContent", None),
        ("openai", "/v1/messages", None),
        ("anthropic", "/v1/messages", "messages"),
        ("anthropic", "/v1/messages?beta=true", "messages"),
        ("anthropic", "/proxy/anthropic/v1/messages", "messages"),
        ("anthropic", "/v1/messages/count_tokens", None),
        ("anthropic", "/v1/messages/batches", None),
        ("anthropic", "/v1/messages/batches/msgbatch_01/results", None),
        ("anthropic", "/v1/chat/completions", None),
        ("anthropic", "/v1/messages_extra", None),
        ("gemini", "/v1/messages", None),
        ("unknown-api", "/v1/chat/completions", None),
        ("openai", "", None),
        ("openai", "?/chat/completions", None),
    ],
)
def test_endpoint_for(api: str, path: str, expected: str | None) -> None:
    assert registry.endpoint_for(api, path) == expected


@pytest.mark.parametrize(
    ("endpoint", "streamed", "cls"),
    [
        ("chat_completions", False, ChatCompletionParser),
        ("chat_completions", True, ChatCompletionStreamParser),
        ("messages", False, MessagesParser),
        ("messages", True, MessagesStreamParser),
        ("responses", False, ResponsesParser),
        ("responses", True, ResponsesStreamParser),
        ("generate_content", False, GeminiParser),
        ("generate_content", True, GeminiStreamParser),
        ("stream_generate_content", False, GeminiParser),  # the JSON array stream
        ("stream_generate_content", True, GeminiStreamParser),
    ],
)
def test_response_parser_is_a_fresh_parser_of_the_right_kind(endpoint: str, streamed: bool, cls: type) -> None:
    first = registry.response_parser(endpoint, streamed)
    assert type(first) is cls
    assert registry.response_parser(endpoint, streamed) is not first


def test_dispatch_reaches_each_providers_parser() -> None:
    openai_req = registry.parse_request("chat_completions", fixture("openai_chat", "request_tool_results.json"))
    anthropic_req = registry.parse_request("messages", fixture("anthropic_messages", "request_tool_results.json"))
    assert (openai_req.model, len(openai_req.tool_results)) == ("gpt-4.1", 4)
    assert (anthropic_req.model, anthropic_req.tools[-1].name) == ("claude-sonnet-4-5-20250929", "web_search")
    parser = registry.response_parser("messages", streamed=True)
    calls = parser.feed(fixture("anthropic_messages", "stream_tool_use.sse"))
    assert [c.name for c in calls] == ["get_weather"] and parser.finish().complete


def test_gemini_stream_flag_comes_from_the_endpoint() -> None:
    body = fixture("gemini", "request_function_responses.json")
    assert registry.parse_request("stream_generate_content", body).stream
    assert not registry.parse_request("generate_content", body).stream


def test_unknown_endpoint() -> None:
    assert registry.parse_request("batches", b"{}").error == "no parser registered for endpoint 'batches'"
    with pytest.raises(KeyError):
        registry.response_parser("batches", streamed=False)


class _EchoParser:
    def __init__(self) -> None:
        self.size = 0

    def feed(self, chunk: bytes) -> list[ToolCallOut]:
        self.size += len(chunk)
        return []

    def finish(self) -> ParsedResponse:
        return ParsedResponse(text=str(self.size), complete=True)


def test_a_new_api_is_one_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = registry.Endpoint(lambda body: ParsedRequest(model=body.decode()), _EchoParser, _EchoParser)
    monkeypatch.setitem(registry.ENDPOINTS, "completions", entry)
    monkeypatch.setitem(registry.ROUTES, "openai", (*registry.ROUTES["openai"], ("/completions", "completions")))
    assert registry.endpoint_for("openai", "/v1/completions?x=1") == "completions"
    assert registry.endpoint_for("openai", "/v1/chat/completions") == "chat_completions"
    assert registry.parse_request("completions", b"gpt-5").model == "gpt-5"
    parser = registry.response_parser("completions", streamed=True)
    parser.feed(b"abc")
    assert parser.finish().text == "3"
