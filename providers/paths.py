"""What a request path says about a call, beyond its endpoint: the Azure deployment and the model.

Gemini names the model in the path (``/v1beta/models/gemini-2.5-flash:generateContent``), not in the body;
Azure OpenAI names the deployment in it (``/openai/deployments/{deployment}/chat/completions``), while its
``/openai/v1/...`` paths carry the deployment in the body's ``model``. Pure functions of ``(api, path)``;
the path is the one stored with the exchange (no query string), percent-encoding undone. What they return
is always encodable as UTF-8 (a surrogate escape in the path becomes U+FFFD).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from toolwatch.providers._wire import clean_text

__all__ = ["deployment_for", "model_from_path"]

_DEPLOYMENT = re.compile(r"/openai/deployments/([^/?#]+)/")
_GEMINI_MODEL = re.compile(r"/models/([^/?#:]+):[A-Za-z]+$")


def deployment_for(api: str, path: str, requested_model: str | None = None) -> str:
    """The Azure deployment a call went to, or "" for other APIs (and when it cannot be told)."""
    if api != "azure":
        return ""
    match = _DEPLOYMENT.search(path)
    if match is not None:
        return clean_text(unquote(match.group(1)))
    return requested_model or ""


def model_from_path(api: str, path: str) -> str | None:
    """The model a Gemini path names (``tunedModels/...`` and Vertex publisher paths too), else None."""
    if api != "gemini":
        return None
    path = clean_text(unquote(path.partition("?")[0])).rstrip("/")
    tuned = re.search(r"/(tunedModels/[^/:]+):[A-Za-z]+$", path)
    if tuned is not None:
        return tuned.group(1)
    match = _GEMINI_MODEL.search(path)
    return match.group(1) if match is not None else None
