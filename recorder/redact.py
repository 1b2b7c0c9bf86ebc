"""Redaction: secrets in stored text are replaced with ``[REDACTED:<pattern>]`` before anything is stored.

It applies to tool-call arguments (raw and canonical), tool results, error and parse notes, and, with
``store_bodies = "redacted"`` (the default), the stored request and response bodies. Everything that is
measured (validation, outcome rules, session keys) runs on the text before redaction, so redaction changes
no figure. The replacement holds no quote or backslash, so JSON text stays JSON.

The built-in patterns cover provider keys (OpenAI, Anthropic, Google), cloud credentials (AWS access
keys and secrets, GitHub and Slack tokens), bearer tokens, JWTs and PEM private keys; ``redact_patterns``
adds more (name -> regular expression), and ``redact_defaults = false`` leaves only those.

Every match of a built-in pattern starts with one of a few short needles (``sk-``, ``AIza``, ``eyJ``, ...).
With the built-in patterns only (the default), one Aho-Corasick pass (SIMD, far faster than the combined
expression, which ``re`` tries alternative by alternative at every position) finds where a match could
start, and the combined expression is tried there alone: the same replacements as ``pattern.sub`` over
the whole text, and text without a needle is not scanned by ``re`` at all. Custom patterns have no known
needles: with any of them, the whole text goes through the combined expression, as it always did.
"""

from __future__ import annotations

import itertools
import re

import ahocorasick_rs

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

# The needles every match of each built-in pattern starts with. A case-insensitive pattern's needles are
# every spelling ``re`` matches with IGNORECASE: upper and lower case, and for "s" also U+017F (long s),
# the one non-ASCII character that matches any of these letters (checked over every code point in
# tests/recorder/test_redact.py).
_FOLDS = {"s": "sS\u017f"}


def _spellings(word: str) -> list[str]:
    return ["".join(p) for p in itertools.product(*(_FOLDS.get(c, c + c.upper()) for c in word))]


NEEDLES: dict[str, list[str]] = {
    "anthropic_key": ["sk-"],
    "openai_key": ["sk-"],
    "google_api_key": ["AIza"],
    "aws_access_key": ["AKIA", "ASIA"],
    "aws_secret_key": _spellings("aws"),
    "github_token": [f"gh{c}_" for c in "pousr"],
    "slack_token": ["xox"],
    "bearer_token": _spellings("bear"),
    "jwt": ["eyJ"],
    "pem_private_key": ["-----BEGIN "],
}


class Redactor:
    """One combined expression: a single pass over the text, whatever the number of patterns (and with the
    built-in patterns, tried only where a needle starts)."""

    def __init__(self, patterns: dict[str, str] | None = None, defaults: bool = True) -> None:
        chosen = {**(DEFAULT_PATTERNS if defaults else {}), **(patterns or {})}
        self.names = list(chosen)
        alternatives = (f"(?P<p{i}>{_scoped(p)})" for i, p in enumerate(chosen.values()))
        self._pattern = re.compile("|".join(alternatives)) if chosen else None
        # where a match can start, when every pattern is a built-in one (see the module docstring)
        self._needles: ahocorasick_rs.BytesAhoCorasick | None = None
        self._all: tuple[bytes, ...] = ()
        if chosen and all(DEFAULT_PATTERNS.get(name) == p for name, p in chosen.items()):
            self._all = tuple(sorted({n.encode() for name in chosen for n in NEEDLES[name]}))
            self._needles = ahocorasick_rs.BytesAhoCorasick(
                self._all, matchkind=ahocorasick_rs.MATCHKIND_LEFTMOST_FIRST
            )

    def _replace(self, match: re.Match[str]) -> str:
        return f"[REDACTED:{self.names[int(match.lastgroup[1:])]}]" if match.lastgroup else "[REDACTED]"

    def text(self, value: str) -> str:
        if self._pattern is None or not value:
            return value
        if self._needles is None:
            return self._pattern.sub(self._replace, value)
        if value.isascii():
            starts = self._starts(value.encode("ascii"))
            return self._sub_at(value, starts) if starts else value
        raw = value.encode("utf-8", "surrogatepass")
        starts = self._starts(raw)
        return self._sub_at(value, _char_offsets(raw, starts, "surrogatepass")) if starts else value

    def optional(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)

    def data(self, value: bytes) -> bytes:
        """Bytes that may not be UTF-8: every other byte is kept exactly."""
        if self._pattern is None or not value:
            return value
        if self._needles is not None:
            starts = self._starts(value)
            if not starts:
                return value  # no match can start anywhere: nothing to decode
            text = value.decode("utf-8", "surrogateescape")
            ascii_only = len(text) == len(value)
            redacted = self._sub_at(text, starts if ascii_only else _char_offsets(value, starts, "surrogateescape"))
        else:
            text = value.decode("utf-8", "surrogateescape")
            redacted = self.text(text)
        return value if redacted == text else redacted.encode("utf-8", "surrogateescape")

    def _starts(self, raw: bytes) -> list[int]:
        """Every byte offset where a needle starts, in order. A leftmost-first search skips the needles
        that start inside one it reported, so the positions inside each reported needle are checked."""
        assert self._needles is not None
        found = self._needles.find_matches_as_indexes(raw)
        if not found:
            return []
        starts = []
        for _, start, end in found:
            starts.append(start)
            starts += [q for q in range(start + 1, end) if raw.startswith(self._all, q)]
        return sorted(starts)

    def _sub_at(self, text: str, starts: list[int]) -> str:
        """``pattern.sub(self._replace, text)``, given every position a match can start at: a match found
        at a position is the one a scan from the left would find there, and scanning resumes at its end."""
        assert self._pattern is not None
        out: list[str] = []
        last = 0
        for pos in starts:
            if pos < last:
                continue
            match = self._pattern.match(text, pos)
            if match is None:
                continue
            out += (text[last:pos], self._replace(match))
            last = match.end()
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)


_GLOBAL_FLAGS = re.compile(r"^\(\?([aiLmsux]+)\)")


def _scoped(pattern: str) -> str:
    """``(?i)abc`` -> ``(?i:abc)``: global flags are only allowed at the start of the whole expression."""
    match = _GLOBAL_FLAGS.match(pattern)
    return f"(?{match.group(1)}:{pattern[match.end() :]})" if match else pattern


def _char_offsets(raw: bytes, starts: list[int], errors: str) -> list[int]:
    """Byte offsets of needle starts as offsets in ``raw`` decoded. A needle starts with an ASCII byte or
    a UTF-8 lead byte, never a continuation byte, so the bytes between two starts decode on their own to
    exactly the characters the whole text has there."""
    out = []
    chars = last = 0
    for start in starts:
        chars += len(raw[last:start].decode("utf-8", errors))
        out.append(chars)
        last = start
    return out
