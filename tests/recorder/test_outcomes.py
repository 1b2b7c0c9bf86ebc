"""Tool-result outcome rules: each default rule on realistic tool output, ordinary results that must stay
ok, the explicit flag, extra rules from the settings, JSON objects judged by their fields only, and the
texts agent frameworks send when a tool fails (``tests/fixtures/framework_errors``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from toolwatch.recorder.outcomes import FRAMEWORK_PATTERNS, Classifier, Rule

DEFAULT = Classifier()
SAMPLES: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "framework_errors" / "samples.json").read_text()
)


def rule_for(content: str, is_error: bool | None = None, classifier: Classifier = DEFAULT) -> str:
    return classifier.classify(content, is_error)


# --- each default rule fires ------------------------------------------------------------------

PYTHON_TRACEBACK = """Traceback (most recent call last):
  File "/srv/tools/fetch.py", line 41, in <module>
    main()
  File "/srv/tools/fetch.py", line 12, in main
    resp.raise_for_status()
requests.exceptions.HTTPError: 500 Server Error: Internal Server Error for url: https://api.example.com/v1
"""


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        (PYTHON_TRACEBACK, "traceback"),
        ("\n  " + PYTHON_TRACEBACK, "traceback"),
        ("Error: ENOENT: no such file or directory, open '/tmp/report.csv'", "error_prefix"),
        ("Error executing tool search_web: upstream returned 502", "error_prefix"),
        ("  Error\n", "error_prefix"),
        ("ValueError: invalid literal for int() with base 10: 'abc'", "exception"),
        ("KeyError: 'user_id'", "exception"),
        ("requests.exceptions.ConnectionError: HTTPSConnectionPool(host='x', port=443)", "exception"),
        ("java.lang.IllegalStateException: connection pool shut down", "exception"),
        ("FileNotFoundError: [Errno 2] No such file or directory: 'data.json'", "exception"),
        ("TypeError: Cannot read properties of undefined (reading 'map')", "exception"),
        ("npm test\n\n> jest\n\nTests: 3 failed, 12 passed\nProcess exited with code 1", "exit_code"),
        ("$ make build\ncc: fatal: no input files\nmake: *** [build] exit status 2", "exit_code"),
        ("Command failed. Exit code: 127\nstderr: sh: foo: command not found", "exit_code"),
        ("Subprocess finished (returncode=3)", "exit_code"),
        ("run_tests completed, return code -11 (segfault)", "exit_code"),
        ("Permission denied (publickey).", "permission_denied"),
        ("PERMISSION DENIED: the service account lacks storage.objects.get", "permission_denied"),
        ("Not found", "not_found"),
        ("not found: no customer with id 8812", "not_found"),
        ("jq: not found", "not_found"),
        ("Timed out after 30000 ms waiting for selector '#submit'", "timed_out"),
        ("timeout: the query did not finish within 60s", "timed_out"),
        ("Timeout while waiting for the lock on db/main", "timed_out"),
    ],
)
def test_each_default_rule_fires_on_realistic_tool_output(content: str, rule: str) -> None:
    assert rule_for(content) == rule


@pytest.mark.parametrize(
    "content",
    [
        "Exception: database connection refused",
        'Exception in thread "main" java.lang.NullPointerException\n\tat Main.main(Main.java:5)',
    ],
)
def test_the_base_exception_name_fires_the_exception_rule(content: str) -> None:
    assert rule_for(content) == "exception"


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        ('{"error": {"code": 404, "message": "Repository not found"}}', "json_error"),
        ('{"error": "rate limited, retry in 20s"}', "json_error"),
        ('{"error": true, "data": null}', "json_error"),
        ('{"ok": false, "error": ["missing field: title"]}', "json_error"),
        ('{"status": "error", "message": "invalid date range"}', "json_status"),
        ('{"status": "FAILED", "job_id": "j-77"}', "json_status"),
        ('{"status": " failure ", "job_id": "j-77"}', "json_status"),
        ('{"status": "fail"}', "json_status"),
        ('{"status": "errored"}', "json_status"),
        ('{"status": 503, "body": "Service Unavailable"}', "json_status"),
        ('{"status": 400}', "json_status"),
        ('\n   {"status": 404, "path": "/v1/users/9"}', "json_status"),
    ],
)
def test_json_objects_that_report_an_error_in_their_fields(content: str, rule: str) -> None:
    assert rule_for(content) == rule


def test_json_error_is_checked_before_json_status() -> None:
    assert rule_for('{"status": "failed", "error": "disk full"}') == "json_error"


def test_text_rules_apply_in_order() -> None:
    # a traceback ends in an exception line: the traceback rule comes first
    assert rule_for("Traceback (most recent call last):\nValueError: x") == "traceback"
    assert rule_for("Error: permission denied for /etc/shadow") == "error_prefix"
    assert rule_for("RuntimeError: child exited with code 2") == "exception"


# --- ordinary results stay ok -----------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        "",
        "Done.",
        "Sunny, 21 C in Oslo.",
        "Found 3 files:\nsrc/error_handler.py\nsrc/errors.py\ntests/test_errors.py",
        "The deploy succeeded. Earlier, Error: timeout was logged by the old release.",
        "Summary of the incident: a ValueError: bad input was raised in staging yesterday.",
        "The report says permission denied errors dropped by 40% this week.",
        "Search results: 'Not found' pages fell after the redirect fix.",
        "Build log:\n  compiled 42 modules\n  Traceback-free run\nProcess exited with code 0",
        "exit code 0",
        "Errors: 0, Warnings: 2",
        "Timeline: timed out requests are retried twice.",
        "ErrorBoundary component rendered",
        "# ErrorHandling\nThis page explains how errors are reported.",
        "x = 1\nprint(x)\n",
    ],
)
def test_ordinary_results_are_ok(content: str) -> None:
    assert rule_for(content) == ""


@pytest.mark.parametrize(
    "content",
    [
        '{"error": null, "data": {"id": 7}}',
        '{"error": "", "items": []}',
        '{"error": false}',
        '{"error": {}, "result": 1}',
        '{"error": [], "result": 1}',
        '{"status": "ok"}',
        '{"status": "success", "rows": 12}',
        '{"status": "completed", "error_count": 0}',
        '{"status": 200, "body": "<html>"}',
        '{"status": 399}',
        '{"status": true}',
        '{"errors_seen": 3, "state": "running"}',
        '{"result": "ok"}',
        "{}",
    ],
)
def test_json_objects_without_an_error_field_set_are_ok(content: str) -> None:
    assert rule_for(content) == ""


@pytest.mark.parametrize(
    "content",
    [
        '{"message": "Error: disk full"}',  # would be error_prefix as text
        '{"stdout": "Traceback (most recent call last):\\n  ...", "status": "ok"}',
        '{"log": "step 3 exited with code 1, retried, then passed", "status": "ok"}',  # exit_code searches anywhere
        '{"note": "Permission denied earlier; fixed"}',
    ],
)
def test_a_json_object_is_judged_by_its_fields_only(content: str) -> None:
    assert json.loads(content)  # really a JSON object
    assert rule_for(content) == ""


def test_text_that_only_looks_like_json_is_judged_as_text() -> None:
    # not parseable, so the text rules apply (exit_code looks anywhere in the head)
    assert rule_for("{partial output ... command exited with code 2") == "exit_code"


def test_a_json_array_is_not_judged_by_its_fields() -> None:
    assert rule_for('[{"error": "boom"}]') == ""


def test_rules_only_look_at_the_first_2_kib() -> None:
    filler = "line of ordinary output\n" * 100  # 2,400 characters
    assert rule_for(filler + "Process exited with code 1") == ""
    assert rule_for("Process exited with code 1\n" + filler) == "exit_code"


# --- the explicit flag ------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["all good", "", '{"status": "ok"}', '{"error": null}', "42"])
def test_the_is_error_flag_wins(content: str) -> None:
    assert rule_for(content, is_error=True) == "is_error"


def test_the_is_error_flag_wins_over_every_other_rule() -> None:
    assert rule_for(PYTHON_TRACEBACK, is_error=True) == "is_error"
    assert rule_for('{"error": "x"}', is_error=True) == "is_error"


@pytest.mark.parametrize("flag", [False, None])
def test_without_the_flag_the_content_decides(flag: bool | None) -> None:
    assert rule_for("Error: quota exhausted", is_error=flag) == "error_prefix"
    assert rule_for("fine", is_error=flag) == ""


# --- extra rules ------------------------------------------------------------------------------


def test_extra_rules_from_the_settings_fire_in_their_order_after_the_defaults() -> None:
    c = Classifier.from_settings({"quota": r"(?i)quota exceeded", "rate_limit": r"\b429\b", "any_quota": r"(?i)quota"})
    assert [r.name for r in c.rules[-3:]] == ["quota", "rate_limit", "any_quota"]
    assert rule_for("Daily QUOTA EXCEEDED for project acme", classifier=c) == "quota"
    assert rule_for("upstream answered 429 Too Many Requests", classifier=c) == "rate_limit"
    assert rule_for("quota: 80% used", classifier=c) == "any_quota"
    assert rule_for("Error: quota exceeded", classifier=c) == "error_prefix"  # defaults first
    assert rule_for("used 12 of 100 credits", classifier=c) == ""
    assert rule_for("QUOTA EXCEEDED", is_error=True, classifier=c) == "is_error"


def test_extra_rules_see_the_head_only_and_not_json_objects() -> None:
    c = Classifier.from_settings({"quota": r"(?i)quota exceeded"})
    assert rule_for("ok\n" * 1000 + "quota exceeded", classifier=c) == ""
    assert rule_for('{"detail": "quota exceeded"}', classifier=c) == ""


def test_no_extra_rules_is_the_default_rule_set() -> None:
    assert Classifier.from_settings({}).rules == DEFAULT.rules
    names = [r.name for r in DEFAULT.rules]
    assert names == [
        "traceback",
        "error_prefix",
        "exception",
        "exit_code",
        "permission_denied",
        "not_found",
        "timed_out",
        "framework_error",
    ]


def test_extra_rules_given_directly() -> None:
    c = Classifier((Rule("oom", re.compile(r"Killed|Out of memory")),))
    assert rule_for("Killed", classifier=c) == "oom"
    assert rule_for("Out of memory: Killed process 311 (python)", classifier=c) == "oom"
    assert rule_for("ok", classifier=c) == ""


# --- JSON: Codex's metadata.exit_code ------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        '{"output":"","metadata":{"exit_code":1,"duration_seconds":0.0}}',
        '{"output":"bash: frobnicate: command not found\\n","metadata":{"exit_code":127,"duration_seconds":0.1}}',
        '{"output":"killed","metadata":{"exit_code":-1,"duration_seconds":0.0}}',
        '{"metadata": {"exit_code": 2}}',
    ],
)
def test_a_non_zero_metadata_exit_code_is_an_error(content: str) -> None:
    assert rule_for(content) == "json_exit_code"


@pytest.mark.parametrize(
    "content",
    [
        '{"output":"README.md\\nsrc\\n","metadata":{"exit_code":0,"duration_seconds":0.0}}',
        '{"output": "Error: this line was printed by a passing test", "metadata": {"exit_code": 0}}',
        '{"output":"Traceback (most recent call last):\\n...","metadata":{"exit_code":0,"duration_seconds":1.2}}',
        '{"output": "aborted", "metadata": {"exit_code": 0}}',
        '{"output": "x", "metadata": {"exit_code": "1"}}',  # not a number: not judged
        '{"output": "x", "metadata": {"exit_code": true}}',
        '{"output": "x", "metadata": {"exit_code": null}}',
        '{"output": "x", "metadata": {"duration_seconds": 0.3}}',
        '{"output": "x", "metadata": 1}',
        '{"output": "x", "metadata": [{"exit_code": 1}]}',
        '{"output": "x", "meta": {"exit_code": 1}}',
    ],
)
def test_codex_output_that_exited_zero_or_has_no_exit_code_is_ok(content: str) -> None:
    assert isinstance(json.loads(content), dict)
    assert rule_for(content) == ""


def test_json_exit_code_comes_after_the_error_and_status_fields() -> None:
    assert rule_for('{"error": "disk full", "metadata": {"exit_code": 1}}') == "json_error"
    assert rule_for('{"status": "failed", "metadata": {"exit_code": 1}}') == "json_status"
    assert rule_for('{"status": "ok", "metadata": {"exit_code": 1}}') == "json_exit_code"


# --- agent frameworks' own error texts ------------------------------------------------------------


@pytest.mark.parametrize("sample", SAMPLES, ids=[s["id"] for s in SAMPLES])
def test_framework_texts_as_the_frameworks_send_them(sample: dict[str, Any]) -> None:
    assert rule_for(sample["content"], is_error=sample["is_error"]) == sample["rule"]


FLAGGED = [s for s in SAMPLES if s["is_error"] and s["framework"] in ("Claude Code", "pydantic-ai")]


@pytest.mark.parametrize("sample", FLAGGED, ids=[s["id"] for s in FLAGGED])
def test_flagged_framework_texts_are_errors_without_the_flag_too(sample: dict[str, Any]) -> None:
    # a gateway that translates Anthropic traffic to the OpenAI format drops is_error
    assert rule_for(sample["content"]) == "framework_error"


def test_the_agents_sdk_default_failure_text_is_an_error() -> None:
    # the defect: every Agents SDK tool failure reached the store as ok
    assert rule_for("An error occurred while running the tool. Please try again.") == "framework_error"


def test_the_samples_cover_every_framework_surveyed() -> None:
    assert {s["framework"] for s in SAMPLES} == {
        "OpenAI Agents SDK",
        "pydantic-ai",
        "LangGraph",
        "LangChain",
        "CrewAI",
        "smolagents",
        "Vercel AI SDK",
        "Claude Code",
        "Codex",
    }
    assert all(s["made"] in ("ran", "source") and s["source"] and s["version"] for s in SAMPLES)


@pytest.mark.parametrize(
    ("framework", "pattern"), FRAMEWORK_PATTERNS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(FRAMEWORK_PATTERNS)]
)
def test_every_framework_text_is_one_a_framework_really_sends(framework: str, pattern: re.Pattern[str]) -> None:
    assert any(s["framework"] == framework and pattern.search(s["content"][:2048]) for s in SAMPLES), (
        f"no {framework} sample for {pattern.pattern}"
    )


def test_framework_error_only_fires_where_the_older_rules_did_not() -> None:
    # LangGraph's texts start with Error: they keep error_prefix
    assert rule_for("Error: get_wether is not a valid tool, try one of [get_weather].") == "error_prefix"
    assert rule_for("get_wether is not a valid tool, try one of [get_weather].") == "framework_error"
    # the AI SDK 7 prefixes the error's type
    assert rule_for("AI_NoSuchToolError: Model tried to call unavailable tool 'x'. No tools are available.") == (
        "exception"
    )


@pytest.mark.parametrize(
    "content",
    [
        "The FAQ says: An error occurred while running the tool. Please try again.",
        "Release notes:\n- get_wether is not a valid tool, try one of [get_weather] now reads better",
        'pydantic-ai tells the model "Fix the errors and try again." after a retry, then continues.',
        "Steps:\n\nFix the errors and try again.\nThen run the linter once more.",
        "Fix the errors and try again.",
        "12 validation errors were fixed in this release.",
        "3 validation errors: see the attached report",
        "The job was aborted",
        "Aborted",
        "aborted jobs: 0",
        "Job 41: exec command rejected by user was logged twice last week",
        "Tool not found in the catalogue? Try the search box.",
        "Tool execution error rates fell by 40% this quarter.",
        "Claude Code wraps failures in <tool_use_error> tags.",
        "Tool 'search' found 3 results.",
        "Tool 'search' not found in cache; fetched it fresh: 3 results.",
        "Model tried to call the weather API twice; both answered.",
        "Summary: I encountered an error: none, everything passed.",
        "unsupported calls are listed in the appendix",
        "Compiled 214 files; 0 errors. See build/error.log for warnings.",
        "status: done (error budget 99.9% left)",
    ],
)
def test_framework_phrases_in_ordinary_results_stay_ok(content: str) -> None:
    assert rule_for(content) == ""


def test_framework_texts_are_looked_for_in_the_head_only() -> None:
    filler = "line of ordinary output\n" * 100  # 2,400 characters
    assert rule_for(filler + "An error occurred while running the tool. Please try again.") == ""
    # pydantic-ai's suffix past 2 KiB is missed; its validation errors are caught by their start instead
    assert rule_for("x" * 2100 + "\n\nFix the errors and try again.") == ""
    assert rule_for("x" * 100 + "\n\nFix the errors and try again.") == "framework_error"
    [long] = [s for s in SAMPLES if s["id"] == "pydantic_ai_validation_long"]
    assert len(long["content"]) > 2048 and rule_for(long["content"]) == "framework_error"


def test_user_rules_come_after_framework_error() -> None:
    c = Classifier.from_settings({"aborts": r"(?i)abort"})
    assert rule_for("aborted", classifier=c) == "framework_error"
    assert rule_for("Aborted by the operator", classifier=c) == "aborts"
