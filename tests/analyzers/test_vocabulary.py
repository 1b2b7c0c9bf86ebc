"""The SQL speaks the same closed vocabularies as the Python code (``toolwatch.schemas.vocab``).

Lists the SQL would otherwise repeat (token-limit finish reasons, the outcomes that mean the upstream
failed) are bound as parameters and must not be spelled in any file; every literal the SQL compares a
vocabulary column with must belong to that vocabulary.
"""

from __future__ import annotations

import re
from importlib import resources

import pytest

from toolwatch.schemas import vocab

SQL = {
    entry.name: entry.read_text()
    for entry in resources.files("toolwatch.analyzers").iterdir()
    if entry.name.endswith(".sql")
}
MIGRATIONS = {
    entry.name: entry.read_text()
    for entry in resources.files("toolwatch.schemas").joinpath("migrations").iterdir()
    if entry.name.endswith(".sql")
}
COMPARED = re.compile(
    r"\b(?:(\w+)\.)?(outcome|endpoint|parse_status|malformed_kind)\s*(?:=|!=|IN|NOT IN)\s*\(?((?:'[^']*'\s*,?\s*)+)",
    re.IGNORECASE,
)


def literals(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


def code(text: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


def test_the_shared_lists_are_parameters_not_spelled_in_sql() -> None:
    for name, text in {**SQL, **MIGRATIONS}.items():
        found = set(literals(code(text)))
        assert not found & vocab.TOKEN_LIMIT_REASONS, name
        assert not found & set(vocab.UPSTREAM_FAILURES), name
    steps = SQL["steps.sql"]
    assert "{token_limit_reasons:Array(String)}" in steps and "{upstream_failures:Array(String)}" in steps


@pytest.mark.parametrize("name", sorted(SQL))
def test_compared_literals_belong_to_their_vocabulary(name: str) -> None:
    # in steps.sql ``outcome`` is the call's outcome; in the session analyzers, the session's
    outcomes = vocab.OUTCOMES if name == "steps.sql" else vocab.SESSION_OUTCOMES
    allowed = {
        "outcome": set(outcomes),
        "endpoint": set(vocab.ENDPOINTS),
        "parse_status": set(vocab.PARSE_STATUSES),
        "malformed_kind": {*vocab.MALFORMED_KINDS, ""},
    }
    for match in COMPARED.finditer(code(SQL[name])):
        column, values = match.group(2).lower(), literals(match.group(3))
        assert set(values) <= allowed[column], (name, match.group(0))


@pytest.mark.parametrize("name", ["session_rows_computed.sql", "session_rows_stored.sql"])
def test_session_outcomes_in_sql_are_the_vocabulary(name: str) -> None:
    rows = code(SQL[name])
    decided = rows[rows.index("multiIf") :]
    produced = set(re.findall(r"'(\w+)'", decided[: decided.index(")")]))
    assert produced == set(vocab.SESSION_OUTCOMES)


def test_session_timelines_speak_the_tool_outcomes() -> None:
    timeline = code(SQL["session.sql"])
    assert {"error", "ok", "pending", "missing"} <= set(literals(timeline))
    assert set(vocab.TOOL_OUTCOMES) == {"error", "ok", "pending", "missing"}


def test_the_matcher_sees_comparisons() -> None:
    # the test above would pass on nothing: make sure it finds what it checks
    found = [m.group(0) for name in SQL for m in COMPARED.finditer(code(SQL[name]))]
    assert any("client_aborted" in f for f in found) and any("'open'" in f for f in found)
