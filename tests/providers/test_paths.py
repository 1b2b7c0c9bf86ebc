"""paths: the Azure deployment and the Gemini model named by a request path."""

from __future__ import annotations

import pytest

from toolwatch.providers.paths import deployment_for, model_from_path


@pytest.mark.parametrize(
    ("api", "path", "model", "expected"),
    [
        ("azure", "/openai/deployments/gpt4o-prod/chat/completions", None, "gpt4o-prod"),
        ("azure", "/openai/deployments/my%20dep/responses", "x", "my dep"),
        ("azure", "/openai/v1/chat/completions", "gpt-4o-deploy", "gpt-4o-deploy"),
        ("azure", "/openai/v1/responses", None, ""),
        ("openai", "/openai/deployments/gpt4o/chat/completions", "m", ""),
        ("gemini", "/v1beta/models/x:generateContent", "m", ""),
    ],
)
def test_deployment_for(api: str, path: str, model: str | None, expected: str) -> None:
    assert deployment_for(api, path, model) == expected


@pytest.mark.parametrize(
    ("api", "path", "expected"),
    [
        ("gemini", "/v1beta/models/gemini-2.5-flash:generateContent", "gemini-2.5-flash"),
        ("gemini", "/v1/models/gemini-2.5-pro:streamGenerateContent", "gemini-2.5-pro"),
        ("gemini", "/v1beta/tunedModels/my-tune-1:generateContent", "tunedModels/my-tune-1"),
        (
            "gemini",
            "/v1/projects/p/locations/us/publishers/google/models/gemini-2.0-flash:generateContent",
            "gemini-2.0-flash",
        ),
        ("gemini", "/v1beta/models/gemini-2.5-flash%3AgenerateContent", "gemini-2.5-flash"),
        ("gemini", "/v1beta/models", None),
        ("gemini", "/v1beta/openai/chat/completions", None),
        ("openai", "/v1beta/models/gemini-2.5-flash:generateContent", None),
    ],
)
def test_model_from_path(api: str, path: str, expected: str | None) -> None:
    assert model_from_path(api, path) == expected
