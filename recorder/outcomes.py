"""Tool-result outcomes: is a result an error, and which rule said so.

Conservative defaults, in order; the first that fires is stored as ``error_rule`` ("" means ok):
``is_error`` (the provider's explicit flag), ``json_error`` (a JSON object with a non-null top-level
``error``), ``json_status`` (a top-level ``status`` such as "error" or "failed"), ``traceback``,
``error_prefix`` (text starting with ``Error``), ``exception`` (starting with an exception name such as
``ValueError:``), ``exit_code`` (a non-zero exit code reported as such), ``permission_denied``,
``not_found``, ``timed_out`` (those words at the start). Extra rules (name and regular expression) come
from settings; ``toolwatch reclassify`` re-applies the rules to stored results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

ERROR_STATUSES = frozenset({"error", "failed", "failure", "fail", "errored"})
_HEAD = 2048  # rules look at the start of a result only


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]


DEFAULT_TEXT_RULES = (
    Rule("traceback", re.compile(r"^\s*Traceback \(most recent call last\)")),
    Rule("error_prefix", re.compile(r"(?i)^\s*error\b")),
    Rule("exception", re.compile(r"^\s*(?:[A-Za-z_][\w.]*\.)?(?:[A-Z]\w*)?(?:Error|Exception)\b")),
    Rule(
        "exit_code",
        re.compile(r"(?i)\b(?:exit(?:ed)?(?:\s+with)?\s+(?:code|status)|return\s?code)\s*[:=]?\s*(?:[1-9]\d*|-\d+)\b"),
    ),
    Rule("permission_denied", re.compile(r"(?i)^\s*permission denied")),
    Rule("not_found", re.compile(r"(?i)^\s*(?:\S+:\s*)?not found")),
    Rule("timed_out", re.compile(r"(?i)^\s*(?:timed out|timeout)")),
)


class Classifier:
    def __init__(self, extra: tuple[Rule, ...] = ()) -> None:
        self.rules = DEFAULT_TEXT_RULES + extra

    @classmethod
    def from_settings(cls, rules: dict[str, str]) -> Classifier:
        return cls(tuple(Rule(name, re.compile(pattern)) for name, pattern in rules.items()))

    def classify(self, content: str, is_error: bool | None) -> str:
        """The name of the first rule that fires, or "" when the result looks fine."""
        if is_error:
            return "is_error"
        head = content[:_HEAD]
        if head.lstrip().startswith("{"):
            verdict = _json_rule(content)
            if verdict is not None:  # a JSON object is judged by its fields only
                return verdict
        for rule in self.rules:
            if rule.pattern.search(head):
                return rule.name
        return ""


def _json_rule(content: str) -> str | None:
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    if value.get("error") not in (None, False, "", {}, []):
        return "json_error"
    status = value.get("status")
    if isinstance(status, str) and status.strip().lower() in ERROR_STATUSES:
        return "json_status"
    if isinstance(status, int) and not isinstance(status, bool) and status >= 400:
        return "json_status"
    return ""
