"""Redaction: secrets in stored text are replaced with ``[REDACTED:<pattern>]`` before anything is stored.

It applies to tool-call arguments (raw and canonical), tool results, error and parse notes, and, with
``store_bodies = "redacted"`` (the default), the stored request and response bodies. Everything that is
measured (validation, outcome rules, session keys) runs on the text before redaction, so redaction changes
no figure. The replacement holds no quote or backslash, so JSON text stays JSON.

The built-in patterns cover provider keys (OpenAI, Anthropic, Google), cloud credentials (AWS access
keys and secrets, GitHub and Slack tokens), bearer tokens, JWTs and PEM private keys; ``redact_patterns``
adds more (name -> regular expression), and ``redact_defaults = false`` leaves only those.
"""

from __future__ import annotations

import re

DEFAULT_PATTERNS: dict[str, str] = {
    "anthropic_key": r"sk-ant-[A-Za-z0-9_\-]{16,}",
    "openai_key": r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
    "google_api_key": r"AIza[0-9A-Za-z_\-]{35}",
    "aws_access_key": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "aws_secret_key": r"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}",
    "github_token": r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",
    "slack_token": r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
    "bearer_token": r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{16,}",
    "jwt": r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    "pem_private_key": r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----[\s\S]{0,20000}?-----END [A-Z ]{0,40}PRIVATE KEY-----",
}


class Redactor:
    """One combined expression: a single pass over the text, whatever the number of patterns."""

    def __init__(self, patterns: dict[str, str] | None = None, defaults: bool = True) -> None:
        chosen = {**(DEFAULT_PATTERNS if defaults else {}), **(patterns or {})}
        self.names = list(chosen)
        alternatives = (f"(?P<p{i}>{_scoped(p)})" for i, p in enumerate(chosen.values()))
        self._pattern = re.compile("|".join(alternatives)) if chosen else None

    def _replace(self, match: re.Match[str]) -> str:
        return f"[REDACTED:{self.names[int(match.lastgroup[1:])]}]" if match.lastgroup else "[REDACTED]"

    def text(self, value: str) -> str:
        if self._pattern is None or not value:
            return value
        return self._pattern.sub(self._replace, value)

    def optional(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)

    def data(self, value: bytes) -> bytes:
        """Bytes that may not be UTF-8: every other byte is kept exactly."""
        if self._pattern is None or not value:
            return value
        text = value.decode("utf-8", "surrogateescape")
        redacted = self.text(text)
        return value if redacted == text else redacted.encode("utf-8", "surrogateescape")


_GLOBAL_FLAGS = re.compile(r"^\(\?([aiLmsux]+)\)")


def _scoped(pattern: str) -> str:
    """``(?i)abc`` -> ``(?i:abc)``: global flags are only allowed at the start of the whole expression."""
    match = _GLOBAL_FLAGS.match(pattern)
    return f"(?{match.group(1)}:{pattern[match.end() :]})" if match else pattern
