"""The closed vocabularies, declared once. Records, parsers and the analyzers' SQL all use these lists:
the SQL receives them as bound parameters (``analyzers/runner.py``), and a test checks that every quoted
literal the SQL compares against belongs to its vocabulary.
"""

from __future__ import annotations

from typing import Literal, get_args

ApiFlavor = Literal["openai", "anthropic", "gemini", "azure"]
Endpoint = Literal[
    "chat_completions",
    "messages",
    "responses",
    "generate_content",
    "stream_generate_content",
    "other",  # no parser registered for the path: recorded as a plain call
]
# How a proxied exchange ended, as the forwarder saw it.
Outcome = Literal[
    "ok",
    "http_error",  # the upstream answered with a status >= 400
    "connect_error",  # the upstream could not be reached
    "upstream_timeout",  # no answer in time, or a stream that went idle
    "upstream_error",  # the upstream's response broke off
    "client_aborted",  # the agent went away before the response was complete
    "proxy_error",  # toolwatch's own failure while forwarding
]
# A session's outcome, decided at query time (see the README's metric definitions).
SessionOutcome = Literal["open", "abandoned", "success", "failed"]
# A tool call's outcome in a session timeline.
ToolOutcome = Literal["ok", "error", "pending", "missing"]
ParseStatus = Literal["ok", "parse_error", "too_large", "not_parsed"]
MalformedKind = Literal["truncated", "invalid_json", "unknown_tool", "schema_violation", "in_text"]
# The built-in tool-result error rules, in the order they are tried ("" means ok). Rules from the
# ``outcome_rules`` setting add names of the user's choosing after these.
ErrorRule = Literal[
    "is_error",
    "json_error",
    "json_status",
    "json_exit_code",
    "traceback",
    "error_prefix",
    "exception",
    "exit_code",
    "permission_denied",
    "not_found",
    "timed_out",
    "framework_error",  # an agent framework's stock failure text (tests/fixtures/framework_errors)
]
# Regression alerts: what raised the alert, its state, and the per-session indicators the tests compare
# (each one "higher is worse": ``failed`` is a closed session that did not succeed).
AlertKind = Literal["switch_regression", "drift", "threshold"]
AlertState = Literal["open", "resolved"]
Indicator = Literal["malformed", "tool_error", "cascade", "failed"]
# A switch: the agent's traffic moved entirely, a share of it moved, or the upstream returned another model
# for the same requested name.
SwitchKind = Literal["full", "partial", "silent"]
# Threshold rules (``alert_rules``) read the per-minute rollups.
ThresholdMetric = Literal["malformed_rate", "http_error_rate"]
NotifyTarget = Literal["webhook", "slack"]
# A notification's delivery (one row per state change and target in ``alert_outbox``).
DeliveryStatus = Literal["pending", "delivered", "silenced", "failed"]
# Finish reasons, across providers, that mean the response stopped at its token limit.
TokenLimitReason = Literal["length", "max_tokens", "MAX_TOKENS", "max_output_tokens"]

API_FLAVORS: tuple[ApiFlavor, ...] = get_args(ApiFlavor)
ENDPOINTS: tuple[Endpoint, ...] = get_args(Endpoint)
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
SESSION_OUTCOMES: tuple[SessionOutcome, ...] = get_args(SessionOutcome)
TOOL_OUTCOMES: tuple[ToolOutcome, ...] = get_args(ToolOutcome)
PARSE_STATUSES: tuple[ParseStatus, ...] = get_args(ParseStatus)
MALFORMED_KINDS: tuple[MalformedKind, ...] = get_args(MalformedKind)
ERROR_RULES: tuple[ErrorRule, ...] = get_args(ErrorRule)
ALERT_KINDS: tuple[AlertKind, ...] = get_args(AlertKind)
ALERT_STATES: tuple[AlertState, ...] = get_args(AlertState)
INDICATORS: tuple[Indicator, ...] = get_args(Indicator)
SWITCH_KINDS: tuple[SwitchKind, ...] = get_args(SwitchKind)
THRESHOLD_METRICS: tuple[ThresholdMetric, ...] = get_args(ThresholdMetric)
TOKEN_LIMIT_REASONS: frozenset[str] = frozenset(get_args(TokenLimitReason))
# Outcomes that count as the upstream failing (with HTTP 5xx and "no response"): a failed step.
UPSTREAM_FAILURES: tuple[Outcome, ...] = ("connect_error", "upstream_timeout", "upstream_error")

# Bound into every analyzer query by name, so the SQL never spells a vocabulary itself.
SQL_PARAMETERS: dict[str, list[str]] = {
    "token_limit_reasons": sorted(TOKEN_LIMIT_REASONS),
    "upstream_failures": list(UPSTREAM_FAILURES),
}
