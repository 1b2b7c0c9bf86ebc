"""registry: endpoint names from path endings, and dispatch through the ENDPOINTS dict."""

from __future__ import annotations

import pytest

from toolwatch.providers import registry
from toolwatch.providers.anthropic_messages import MessagesParser, MessagesStreamParser
from toolwatch.providers.base import ParsedRequest, ParsedResponse, ToolCallOut
from toolwatch.providers.openai_chat import ChatCompletionParser, ChatCompletionStreamParser

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
        ("openai", "/v1/responses", None),
        ("openai", "/v1/messages", None),
        ("anthropic", "/v1/messages", "messages"),
        ("anthropic", "/v1/messages?beta=true", "messages"),
        ("anthropic", "/proxy/anthropic/v1/messages", "messages"),
        ("anthropic", "/v1/messages/count_tokens", None),
        ("anthropic", "/v1/messages/batches", None),
        ("anthropic", "/v1/messages/batches/msgbatch_01/results", None),
        ("anthropic", "/v1/chat/completions", None),
        ("anthropic", "/v1/messages_extra", None),
        ("gemini", "/v1/chat/completions", None),
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


def test_unknown_endpoint() -> None:
    assert registry.parse_request("responses", b"{}").error == "no parser registered for endpoint 'responses'"
    with pytest.raises(KeyError):
        registry.response_parser("responses", streamed=False)


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
    monkeypatch.setitem(registry.ENDPOINTS, "responses", entry)
    monkeypatch.setitem(registry.ROUTES, "openai", (*registry.ROUTES["openai"], ("/responses", "responses")))
    assert registry.endpoint_for("openai", "/v1/responses?x=1") == "responses"
    assert registry.endpoint_for("openai", "/v1/chat/completions") == "chat_completions"
    assert registry.parse_request("responses", b"gpt-5").model == "gpt-5"
    parser = registry.response_parser("responses", streamed=True)
    parser.feed(b"abc")
    assert parser.finish().text == "3"
