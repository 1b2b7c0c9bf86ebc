"""Tool-result outcome rules: each default rule on realistic tool output, ordinary results that must stay
ok, the explicit flag, extra rules from the settings, and JSON objects judged by their fields only."""

from __future__ import annotations

import json
import re

import pytest

from toolwatch.recorder.outcomes import Classifier, Rule

DEFAULT = Classifier()


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
    ]


def test_extra_rules_given_directly() -> None:
    c = Classifier((Rule("oom", re.compile(r"Killed|Out of memory")),))
    assert rule_for("Killed", classifier=c) == "oom"
    assert rule_for("Out of memory: Killed process 311 (python)", classifier=c) == "oom"
    assert rule_for("ok", classifier=c) == ""
