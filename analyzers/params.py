"""Parameters of the analyzers, parsed once for the CLI and the HTTP API alike.

Windows: ``since`` is a duration back from ``until`` (``90s``, ``15m``, ``24h``, ``7d``) or an ISO-8601
time; ``until`` is a duration back from now, an ISO-8601 time or ``now`` (the default). Naive times are UTC.
Error messages start with the parameter's name, which the CLI spells as its flag (``--since``).
"""

from __future__ import annotations

import datetime as dt
import inspect
import uuid
from collections.abc import Callable
from typing import Any

from toolwatch.schemas.durations import is_duration, seconds
from toolwatch.schemas.vocab import ALERT_KINDS, SESSION_OUTCOMES

DEFAULT_ABANDON_S = 600
DEFAULT_CASCADE_RUN = 3


class ParamError(ValueError):
    pass


DURATION_EXAMPLES = "a duration like 15m, 24h or 7d"
TIME_EXAMPLE = "an ISO-8601 time like 2026-11-25T10:00:00Z"


def int_param(raw: str | None, name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter within [lo, hi]; ``default`` when absent."""
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ParamError(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise ParamError(f"{name} must be between {lo} and {hi}")
    return value


def duration_s(text: str, name: str = "") -> float:
    try:
        return seconds(text)
    except ValueError as e:
        raise ParamError(f"{name} {e}" if name else str(e)) from None


def instant(text: str | None, now: dt.datetime) -> dt.datetime:
    if text is None or text.strip() in ("", "now"):
        return now
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise ParamError(f"{text!r} is not an ISO-8601 time (e.g. 2026-11-25T10:00:00Z) or 'now'") from e
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _point(name: str, text: str, back_from: dt.datetime, now: dt.datetime) -> dt.datetime:
    if is_duration(text):
        return back_from - dt.timedelta(seconds=duration_s(text, name))
    try:
        return instant(text, now)
    except ParamError:
        raise ParamError(f"{name} {text!r} is not {DURATION_EXAMPLES}, and not {TIME_EXAMPLE}") from None


def window(since: str | None, until: str | None, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """``since`` counts back from ``until``; a duration ``until`` counts back from now."""
    now = now or dt.datetime.now(dt.UTC)
    end = _point("until", until, now, now) if until else now
    start = _point("since", since or "24h", end, now)
    if start >= end:
        raise ParamError(f"since must be before until (since {start.isoformat()}, until {end.isoformat()})")
    return start, end


def report_params(
    since: str | None = None,
    until: str | None = None,
    agent: str | None = None,
    model: str | None = None,
    abandon: str | None = None,
    cascade_run: int | str | None = None,
) -> dict[str, Any]:
    start, end = window(since, until)
    run = DEFAULT_CASCADE_RUN if cascade_run in (None, "") else int(cascade_run)
    if not 2 <= run <= 1000:
        raise ParamError(f"cascade_run must be between 2 and 1000 (consecutive failed steps), got {run}")
    return {
        "since": start,
        "until": end,
        "agent": agent or "",
        "model": model or "",
        "abandon_s": int(duration_s(abandon, "abandon")) if abandon else DEFAULT_ABANDON_S,
        "cascade_run": run,
    }


def sessions_params(
    since: str | None = None,
    until: str | None = None,
    agent: str | None = None,
    model: str | None = None,
    abandon: str | None = None,
    cascade_run: int | str | None = None,
    failed: bool | str | None = None,
    last: int | str | None = None,
    user: str | None = None,
    property: str | None = None,
    outcome: str | None = None,
    search: str | None = None,
    offset: int | str | None = None,
) -> dict[str, Any]:
    params = report_params(since, until, agent, model, abandon, cascade_run)
    n = int_param(None if last in (None, "") else str(last), "last", 50, 1, 10_000)
    skip = int_param(None if offset in (None, "") else str(offset), "offset", 0, 0, 10_000_000)
    if outcome and outcome not in SESSION_OUTCOMES:
        raise ParamError(f"outcome must be one of {', '.join(SESSION_OUTCOMES)}, got {outcome!r}")
    key, sep, value = (property or "").partition("=")
    if property and not sep:
        raise ParamError("property must be NAME=VALUE")
    params.update(
        failed_only=1 if str(failed).lower() in ("1", "true", "yes") else 0,
        last=n,
        offset=skip,
        user=user or "",
        prop_key=key,
        prop_value=value,
        outcome=outcome or "",
        search=search or "",
    )
    return params


def session_params(
    session: str | None = None,
    since: str | None = None,
    until: str | None = None,
    abandon: str | None = None,
    cascade_run: int | str | None = None,
) -> dict[str, Any]:
    if not session:
        raise ParamError("session: a session id is required (as listed by sessions)")
    params = report_params(since or "7d", until, None, None, abandon, cascade_run)
    params["session"] = session
    return params


def timeseries_params(
    since: str | None = None,
    until: str | None = None,
    agent: str | None = None,
    model: str | None = None,
    abandon: str | None = None,
    cascade_run: int | str | None = None,
    step: str | None = None,
) -> dict[str, Any]:
    """``step`` is a duration; by default about 120 buckets over the window, at a round size."""
    params = report_params(since, until, agent, model, abandon, cascade_run)
    span = (params["until"] - params["since"]).total_seconds()
    if step:
        step_s = int(duration_s(step, "step"))
        if not 10 <= step_s <= 86_400 or span / step_s > 5_000:
            raise ParamError("step must be between 10s and 1d, and make at most 5000 buckets")
    else:
        step_s = next((s for s in NICE_STEPS if span / s <= 150), NICE_STEPS[-1])
    params["step_s"] = step_s
    return params


NICE_STEPS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def tools_params(
    since: str | None = None, until: str | None = None, agent: str | None = None, model: str | None = None
) -> dict[str, Any]:
    return report_params(since, until, agent, model)


def call_params(id: str | None = None) -> dict[str, Any]:
    try:
        return {"call_id": uuid.UUID(id or "")}
    except ValueError:
        raise ParamError("id must be a call id (a UUID)") from None


def no_params() -> dict[str, Any]:
    return {}


def _flag(value: bool | str | None) -> bool:
    return str(value).lower() in ("1", "true", "yes")


def alerts_params(
    open: bool | str | None = None,
    agent: str | None = None,
    kind: str | None = None,
    since: str | None = None,
    last: int | str | None = None,
) -> dict[str, Any]:
    """``since``: resolved alerts updated since then are listed too (default 7d); open ones always are."""
    if kind and kind not in ALERT_KINDS:
        raise ParamError(f"kind must be one of {', '.join(ALERT_KINDS)}, got {kind!r}")
    start, _ = window(since or "7d", None)
    n = int_param(None if last in (None, "") else str(last), "last", 100, 1, 10_000)
    return {"open_only": _flag(open), "agent": agent or "", "kind": kind or "", "since": start, "last": n}


def check_params(agent: str | None = None, since: str | None = None) -> dict[str, Any]:
    start, _ = window(since or "24h", None)
    return {"agent": agent or "", "since": start}


def compare_params(
    agent: str | None = None,
    before: str | None = None,
    after: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    if not (agent and before and after):
        raise ParamError("compare needs agent, before and after (two model names)")
    start, end = window(since or "7d", until)
    return {"agent": agent, "before": before, "after": after, "since": start, "until": end}


# analyzer name -> how its parameters are parsed; the HTTP API and the CLI both go through this table
ANALYZERS: dict[str, Callable[..., dict[str, Any]]] = {
    "report": report_params,
    "sessions": sessions_params,
    "session": session_params,
    "timeseries": timeseries_params,
    "tools": tools_params,
    "call": call_params,
    "prices": no_params,
    "alerts": alerts_params,
    "check": check_params,
    "compare": compare_params,
    "silences": no_params,
}


def analyzer_params(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Parse raw string parameters (a query string, CLI flags) for an analyzer; unknown keys are errors."""
    fn = ANALYZERS[name]
    allowed = set(inspect.signature(fn).parameters)
    unknown = set(raw) - allowed
    if unknown:
        raise ParamError(f"unknown parameter(s) for {name}: {', '.join(sorted(unknown))}")
    return fn(**{k: v for k, v in raw.items() if v is not None})
