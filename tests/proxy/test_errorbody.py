"""Error bodies the proxy answers with itself: shaped so each provider's SDK raises its usual error."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from tests.providers.helpers import mock_http
from toolwatch.proxy.errorbody import error_body


def test_openai_shape() -> None:
    body = json.loads(error_body("openai", 502, "upstream refused the connection", "connect_error"))
    assert body == {
        "error": {
            "message": "upstream refused the connection",
            "type": "toolwatch_error",
            "param": None,
            "code": "connect_error",
        }
    }


@pytest.mark.parametrize(("status", "kind"), [(502, "api_error"), (500, "api_error"), (504, "timeout_error")])
def test_anthropic_shape(status: int, kind: str) -> None:
    body = json.loads(error_body("anthropic", status, "no response", "upstream_timeout"))
    assert body == {"type": "error", "error": {"type": kind, "message": "no response"}}


def test_an_unknown_api_gets_the_openai_shape() -> None:
    assert json.loads(error_body("cohere", 502, "m", "c"))["error"]["code"] == "c"


def test_message_is_escaped_not_formatted() -> None:
    message = 'quote " backslash \\ newline \n unicode 東京 {braces}'
    for api in ("openai", "anthropic"):
        assert json.loads(error_body(api, 502, message, "x"))["error"]["message"] == message


MESSAGES: Any = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("status", "exc"), [(502, openai.InternalServerError), (504, openai.InternalServerError)])
def test_openai_sdk_raises_its_usual_error(status: int, exc: type[openai.APIStatusError]) -> None:
    body = error_body("openai", status, "toolwatch: upstream timed out", "upstream_timeout")
    client = openai.OpenAI(
        api_key="x",
        base_url="http://fake/v1",
        http_client=mock_http(body, "application/json", status),
        max_retries=0,
    )
    with client, pytest.raises(exc) as info:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.status_code == status
    assert "toolwatch: upstream timed out" in info.value.message
    assert info.value.code == "upstream_timeout"


@pytest.mark.parametrize("status", [502, 504])
def test_anthropic_sdk_raises_its_usual_error(status: int) -> None:
    body = error_body("anthropic", status, "toolwatch: upstream timed out", "upstream_timeout")
    client = anthropic.Anthropic(
        api_key="x", base_url="http://fake", http_client=mock_http(body, "application/json", status), max_retries=0
    )
    with client, pytest.raises(anthropic.InternalServerError) as info:
        client.messages.create(model="m", max_tokens=1, messages=MESSAGES)
    assert info.value.status_code == status
    assert "toolwatch: upstream timed out" in info.value.message
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == ("timeout_error" if status == 504 else "api_error")


def test_gemini_errors_use_googles_shape() -> None:
    import json

    from toolwatch.proxy.errorbody import error_body

    body = json.loads(error_body("gemini", 504, "the upstream did not answer in time", "upstream_timeout"))
    assert body == {
        "error": {"code": 504, "message": "the upstream did not answer in time", "status": "DEADLINE_EXCEEDED"}
    }
    assert json.loads(error_body("gemini", 502, "down", "connect_error"))["error"]["status"] == "UNAVAILABLE"
