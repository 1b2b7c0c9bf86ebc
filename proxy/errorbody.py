"""Error bodies the proxy itself answers with, shaped like each provider's own errors.

SDKs parse these into their usual exception types, so an agent sees a normal API error.
"""

from __future__ import annotations

import orjson


def error_body(api: str, status: int, message: str, code: str) -> bytes:
    if api == "gemini":  # Google's API error shape
        kind = "DEADLINE_EXCEEDED" if status == 504 else "UNAVAILABLE"
        return orjson.dumps({"error": {"code": status, "message": message, "status": kind}})
    if api == "anthropic":
        kind = "timeout_error" if status == 504 else "api_error"
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    return orjson.dumps({"error": {"message": message, "type": "toolwatch_error", "param": None, "code": code}})
