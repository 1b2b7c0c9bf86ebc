"""Analyzer parameters as the CLI and the HTTP API pass them: durations, ISO times, windows and bounds."""

from __future__ import annotations

import datetime as dt

import pytest

from toolwatch.analyzers.params import (
    DEFAULT_ABANDON_S,
    DEFAULT_CASCADE_RUN,
    ParamError,
    analyzer_params,
    duration_s,
    instant,
    report_params,
    session_params,
    sessions_params,
    window,
)

NOW = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.UTC)
UTC = dt.UTC


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("24h", 86400),
        ("7d", 604800),
        ("2w", 1209600),
        ("1.5h", 5400),
        ("0.5d", 43200),
        (" 10m ", 600),
        ("10 m", 600),
        ("0s", 0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "10x", "-5m", "1h30m", "h", "ten minutes", "5M", "1e3s", "P1D"])
def test_bad_durations_are_param_errors(text: str) -> None:
    with pytest.raises(ParamError, match="not a duration"):
        duration_s(text)


def test_param_errors_are_value_errors() -> None:
    assert issubclass(ParamError, ValueError)


# --- instants ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "now", "  now  "])
def test_now(text: str | None) -> None:
    assert instant(text, NOW) is NOW


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T10:00:00", dt.datetime(2026, 11, 20, 10, tzinfo=UTC)),  # naive is UTC
        ("2026-11-20T10:00:00Z", dt.datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T10:00:00+00:00", dt.datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T12:30:00+02:30", dt.datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20 10:00", dt.datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20", dt.datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T10:00:00.250Z", dt.datetime(2026, 11, 20, 10, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_iso_times(text: str, expected: dt.datetime) -> None:
    value = instant(text, NOW)
    assert value == expected
    assert value.tzinfo is not None


def test_a_naive_time_is_utc_not_local() -> None:
    value = instant("2026-11-20T10:00:00", NOW)
    assert value.utcoffset() == dt.timedelta(0)


def test_an_offset_is_kept() -> None:
    value = instant("2026-11-20T12:30:00+02:30", NOW)
    assert value.utcoffset() == dt.timedelta(hours=2, minutes=30)


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00:00", "25/11/2026", "1700000000", "24h"])
def test_bad_times_are_param_errors(text: str) -> None:
    with pytest.raises(ParamError, match="ISO-8601"):
        instant(text, NOW)


# --- windows ----------------------------------------------------------------------------------


def test_the_default_window_is_the_last_24_hours_until_now() -> None:
    assert window(None, None, NOW) == (NOW - dt.timedelta(hours=24), NOW)
    assert window("", "now", NOW) == (NOW - dt.timedelta(hours=24), NOW)


def test_a_duration_counts_back_from_until() -> None:
    assert window("30m", None, NOW) == (NOW - dt.timedelta(minutes=30), NOW)
    until = dt.datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert window("2h", "2026-11-20T10:00:00Z", NOW) == (until - dt.timedelta(hours=2), until)


def test_since_and_until_as_times() -> None:
    start, end = window("2026-11-20T08:00:00", "2026-11-20T10:00:00+01:00", NOW)
    assert start == dt.datetime(2026, 11, 20, 8, tzinfo=UTC)
    assert end == dt.datetime(2026, 11, 20, 9, tzinfo=UTC)


def test_the_window_defaults_to_the_real_clock() -> None:
    before = dt.datetime.now(dt.UTC)
    start, end = window("1h", None)
    after = dt.datetime.now(dt.UTC)
    assert before <= end <= after
    assert end - start == dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2026-11-20T10:00:00Z", "2026-11-20T10:00:00Z"),  # empty
        ("2026-11-20T11:00:00Z", "2026-11-20T10:00:00Z"),  # reversed
        ("2026-11-26T00:00:00Z", None),  # after now
        ("0s", None),
        ("2026-11-20T10:00:00", "2026-11-20T11:00:00+02:00"),  # 10:00 UTC vs 09:00 UTC
    ],
)
def test_since_must_be_before_until(since: str, until: str | None) -> None:
    with pytest.raises(ParamError, match="since must be before until"):
        window(since, until, NOW)


def test_a_bad_since_or_until_is_a_param_error() -> None:
    with pytest.raises(ParamError):
        window("last week", None, NOW)
    with pytest.raises(ParamError):
        window("1h", "soon", NOW)


# --- report parameters ------------------------------------------------------------------------


def test_report_defaults() -> None:
    p = report_params(since="1h")
    assert set(p) == {"since", "until", "agent", "model", "abandon_s", "cascade_run"}
    assert p["until"] - p["since"] == dt.timedelta(hours=1)
    assert (p["agent"], p["model"]) == ("", "")
    assert p["abandon_s"] == DEFAULT_ABANDON_S == 600
    assert p["cascade_run"] == DEFAULT_CASCADE_RUN == 3


def test_report_filters_and_abandon() -> None:
    p = report_params("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z", "ci-bot", "gpt-x", "90s", "5")
    assert p == {
        "since": dt.datetime(2026, 11, 20, tzinfo=UTC),
        "until": dt.datetime(2026, 11, 21, tzinfo=UTC),
        "agent": "ci-bot",
        "model": "gpt-x",
        "abandon_s": 90,
        "cascade_run": 5,
    }
    assert report_params(abandon="1.5m")["abandon_s"] == 90


@pytest.mark.parametrize(("raw", "run"), [(None, 3), ("", 3), (2, 2), ("2", 2), (1000, 1000), ("17", 17)])
def test_cascade_run_within_bounds(raw: int | str | None, run: int) -> None:
    assert report_params(cascade_run=raw)["cascade_run"] == run


@pytest.mark.parametrize("raw", [1, "1", 0, -3, 1001, "5000"])
def test_cascade_run_out_of_bounds(raw: int | str) -> None:
    with pytest.raises(ParamError, match="between 2 and 1000"):
        report_params(cascade_run=raw)


def test_a_cascade_run_that_is_not_a_number_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        report_params(cascade_run="three")


def test_a_bad_abandon_is_a_param_error() -> None:
    with pytest.raises(ParamError):
        report_params(abandon="10 minutes")


# --- sessions and session ---------------------------------------------------------------------


def test_sessions_defaults() -> None:
    p = sessions_params()
    assert p["failed_only"] == 0
    assert p["last"] == 50
    assert p["until"] - p["since"] == dt.timedelta(hours=24)
    assert p["cascade_run"] == 3 and p["abandon_s"] == 600


@pytest.mark.parametrize(("raw", "flag"), [("1", 1), ("true", 1), ("True", 1), ("yes", 1), (True, 1)])
def test_sessions_failed_only_on(raw: str | bool, flag: int) -> None:
    assert sessions_params(failed=raw)["failed_only"] == flag


@pytest.mark.parametrize("raw", [None, "", "0", "false", "no", False])
def test_sessions_failed_only_off(raw: str | bool | None) -> None:
    assert sessions_params(failed=raw)["failed_only"] == 0


@pytest.mark.parametrize(("raw", "n"), [("1", 1), (10_000, 10_000), ("", 50), ("200", 200)])
def test_sessions_last(raw: str | int, n: int) -> None:
    assert sessions_params(last=raw)["last"] == n


@pytest.mark.parametrize("raw", ["0", -1, 10_001])
def test_sessions_last_out_of_bounds(raw: str | int) -> None:
    with pytest.raises(ParamError, match="last must be between 1 and 10000"):
        sessions_params(last=raw)


def test_sessions_pass_the_report_parameters_on() -> None:
    p = sessions_params(since="2h", model="claude-x", agent="a1", cascade_run="4", abandon="5m", failed="1", last="7")
    assert p["until"] - p["since"] == dt.timedelta(hours=2)
    assert (p["model"], p["agent"], p["cascade_run"], p["abandon_s"]) == ("claude-x", "a1", 4, 300)
    assert (p["failed_only"], p["last"]) == (1, 7)


def test_session_needs_an_id() -> None:
    with pytest.raises(ParamError, match="session id is required"):
        session_params(None)
    with pytest.raises(ParamError, match="session id is required"):
        session_params("")


def test_session_defaults_to_the_last_7_days() -> None:
    p = session_params("h:run-42")
    assert p["session"] == "h:run-42"
    assert p["until"] - p["since"] == dt.timedelta(days=7)
    assert (p["agent"], p["model"]) == ("", "")


def test_session_window_and_bounds() -> None:
    p = session_params("k:abc", since="1h", abandon="2m", cascade_run=6)
    assert p["until"] - p["since"] == dt.timedelta(hours=1)
    assert (p["abandon_s"], p["cascade_run"]) == (120, 6)
    with pytest.raises(ParamError):
        session_params("k:abc", cascade_run=1)


# --- analyzer_params --------------------------------------------------------------------------


def test_analyzer_params_parses_raw_strings() -> None:
    p = analyzer_params("sessions", {"since": "3h", "failed": "true", "last": "5", "cascade_run": "4"})
    assert p["until"] - p["since"] == dt.timedelta(hours=3)
    assert (p["failed_only"], p["last"], p["cascade_run"]) == (1, 5, 4)
    s = analyzer_params("session", {"session": "h:x"})
    assert s["session"] == "h:x" and s["until"] - s["since"] == dt.timedelta(days=7)


def test_analyzer_params_drops_none_values() -> None:
    p = analyzer_params("report", {"since": None, "model": None, "cascade_run": None})
    assert p["until"] - p["since"] == dt.timedelta(hours=24)
    assert (p["model"], p["cascade_run"]) == ("", 3)


@pytest.mark.parametrize(
    ("name", "raw", "unknown"),
    [
        ("report", {"since": "1h", "bogus": "1"}, "bogus"),
        ("report", {"failed": "1"}, "failed"),  # a sessions-only parameter
        ("report", {"last": "5"}, "last"),
        ("session", {"session": "h:x", "model": "gpt-x"}, "model"),
        ("sessions", {"session": "h:x"}, "session"),
    ],
)
def test_analyzer_params_rejects_unknown_keys(name: str, raw: dict[str, str], unknown: str) -> None:
    with pytest.raises(ParamError, match=f"unknown parameter\\(s\\) for {name}: {unknown}"):
        analyzer_params(name, raw)


def test_every_unknown_key_is_named_in_order() -> None:
    with pytest.raises(ParamError, match="zeta") as info:
        analyzer_params("report", {"zeta": "1", "alpha": "2", "since": "1h"})
    assert str(info.value).endswith("alpha, zeta")


def test_analyzer_params_reports_bad_values() -> None:
    with pytest.raises(ParamError, match="since must be before until"):
        analyzer_params("report", {"since": "2026-11-20T10:00:00Z", "until": "2026-11-20T09:00:00Z"})
    with pytest.raises(ParamError, match="session id is required"):
        analyzer_params("session", {"session": ""})


def test_analyzer_params_without_a_session_id_is_a_param_error() -> None:
    with pytest.raises(ParamError, match="session id is required"):
        analyzer_params("session", {"since": "1h"})
