"""Tool-result outcomes: is a result an error, and which rule said so.

The first rule that fires is stored as ``error_rule`` ("" means ok). Rules look at the first 2 KiB of a
result only, and a JSON object is judged by its fields only (its text never reaches the text rules).
The built-in rules, in the order they are tried:

- ``is_error``: the provider's explicit flag (Anthropic's ``is_error: true`` on the tool result).
- ``json_error``: a JSON object whose top-level ``error`` is set (not null, false, "", {} or []).
- ``json_status``: a JSON object whose top-level ``status`` is error/failed/failure/fail/errored or a number >= 400.
- ``json_exit_code``: a JSON object whose ``metadata.exit_code`` is a non-zero integer (Codex's shell output).
- ``traceback``: text starting with ``Traceback (most recent call last)``.
- ``error_prefix``: text starting with the word ``Error``.
- ``exception``: text starting with an exception name such as ``ValueError:`` or ``java.io.IOException``.
- ``exit_code``: a non-zero exit or return code reported as such anywhere in the head (``exited with code 2``).
- ``permission_denied``: text starting with ``Permission denied``.
- ``not_found``: text starting with ``Not found`` (or ``<name>: not found``).
- ``timed_out``: text starting with ``Timed out`` or ``Timeout``.
- ``framework_error``: an agent framework's stock text for a failed, invalid or refused call (``FRAMEWORK_TEXTS``).

Then the extra rules (name and regular expression) from the ``outcome_rules`` setting, in their order.
``toolwatch reclassify`` re-applies the rules to stored results.

``framework_error`` knows the texts of the OpenAI Agents SDK, pydantic-ai, LangChain, CrewAI, the Vercel AI
SDK, Claude Code and Codex. It comes last among the built-ins, so it only ever turns a result that was ok
into an error: texts that start with ``Error`` (LangGraph's ToolNode, CrewAI's native tool calls,
smolagents, AI SDK 7) keep the rule they always had. Where each text comes from, with the exact strings the
frameworks produce, is in ``tests/fixtures/framework_errors/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeGuard

import orjson

ERROR_STATUSES = frozenset({"error", "failed", "failure", "fail", "errored"})
_HEAD = 2048  # rules look at the start of a result only


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]


# (framework, pattern): what a framework sends the model in place of a tool's output when the tool
# failed, the call was invalid, or it was refused. Each pattern is anchored at the start of the result
# (after whitespace) unless it starts with \A itself; one ending in \Z is the whole result. Matching is
# case-sensitive.
FRAMEWORK_TEXTS: tuple[tuple[str, str], ...] = (
    # default_tool_error_function (up to 0.22 it appends " Error: <exception>"), the default timeout,
    # tool-not-found and approval-rejection messages
    ("OpenAI Agents SDK", r"An error occurred while (?:running the tool|parsing tool arguments)\. Please try again"),
    ("OpenAI Agents SDK", r"Tool '[^'\n]+' (?:timed out after [0-9][0-9.e+-]* seconds|not found)\."),
    ("OpenAI Agents SDK", r"Tool execution was not approved\."),
    # RetryPromptPart.model_response() (ModelRetry, argument validation, unknown tool) ends with this,
    # and argument validation starts "<n> validation error(s):" then the error list, which can pass 2 KiB
    ("pydantic-ai", r"\A[\s\S]*\n\nFix the errors and try again\.\s*\Z"),
    ("pydantic-ai", r"\A\s*\d+ validation errors?:\s*(?:```json\s*)?\["),
    # AgentExecutor's InvalidTool; BaseTool's handle_tool_error / handle_validation_error = True
    ("LangChain", r"[^\n]+? is not a valid tool, try one of \["),
    ("LangChain", r"Tool (?:execution|input validation) error\s*\Z"),
    # native tool calls: unknown tool, a before-tool-call hook said no; ReAct tool usage errors
    ("CrewAI", r"Tool not found\s*\Z"),
    ("CrewAI", r"Tool execution blocked by hook\. Tool: "),
    ("CrewAI", r"I encountered an error(?: while trying to use the tool\. This was the error)?: "),
    ("CrewAI", r"You tried to use the tool [^\n]+, but it doesn't exist\."),
    # AI SDK 5-6 error-text for NoSuchToolError / InvalidToolInputError; a denied tool approval
    ("Vercel AI SDK", r"Model tried to call unavailable tool '"),
    ("Vercel AI SDK", r"Invalid input for tool \S+: "),
    ("Vercel AI SDK", r"Tool call execution denied\."),
    # tool errors are wrapped in <tool_use_error> (with is_error, which a translating gateway can drop);
    # the user rejecting a tool use
    ("Claude Code", r"<tool_use_error>"),
    ("Claude Code", r"The user doesn't want to proceed with this tool use\."),
    # the synthetic output of an interrupted call; FunctionCallError::RespondToModel texts
    ("Codex", r"aborted\s*\Z"),
    (
        "Codex",
        r"(?:failed to parse function arguments|unsupported (?:custom tool )?call|execution error"
        r"|apply_patch verification failed): ",
    ),
    ("Codex", r"(?:exec command|patch) rejected(?: by user\s*\Z|: )"),
)


def _anchored(pattern: str) -> str:
    return pattern if pattern.startswith(r"\A") else rf"\A\s*(?:{pattern})"


# each framework text as it is searched in the head; the framework_error rule is their alternation
FRAMEWORK_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (framework, re.compile(_anchored(p))) for framework, p in FRAMEWORK_TEXTS
)


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
    Rule("framework_error", re.compile("|".join(f"(?:{_anchored(p)})" for _, p in FRAMEWORK_TEXTS))),
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
    if _is_int(status) and status >= 400:
        return "json_status"
    metadata = value.get("metadata")
    if isinstance(metadata, dict) and _is_int(code := metadata.get("exit_code")) and code != 0:
        return "json_exit_code"
    return ""


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
