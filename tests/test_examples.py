"""The upstream examples shipped in deploy/examples/ load, and their documented paths reach a parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolwatch.providers.registry import endpoint_for
from toolwatch.schemas.settings import load_settings

EXAMPLES = Path(__file__).resolve().parent.parent / "deploy" / "examples"
# example -> (mount, url, api, a path the SDK sends below the mount, its endpoint)
EXPECTED = {
    "zai-glm.toml": ("glm", "https://api.z.ai/api/paas/v4", "openai", "/chat/completions", "chat_completions"),
    "openrouter.toml": (
        "openrouter",
        "https://openrouter.ai/api/v1",
        "openai",
        "/chat/completions",
        "chat_completions",
    ),
    "vllm.toml": ("vllm", "http://localhost:8000/v1", "openai", "/responses", "responses"),
    "ollama.toml": ("ollama", "http://localhost:11434/v1", "openai", "/chat/completions", "chat_completions"),
    "azure.toml": (
        "azure",
        "https://my-resource.openai.azure.com",
        "azure",
        "/openai/deployments/gpt4o/chat/completions",
        "chat_completions",
    ),
}


def test_every_example_is_checked() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.toml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_loads_and_routes(name: str) -> None:
    mount, url, api, path, endpoint = EXPECTED[name]
    settings = load_settings(EXAMPLES / name, environ={})
    upstream = settings.upstreams[mount]
    assert (upstream.url, upstream.api) == (url, api)
    assert endpoint_for(upstream.api, path) == endpoint
    assert {"openai", "anthropic", "gemini"} <= set(settings.upstreams)  # the built-ins stay
