"""The command line as people meet it: every command, plain and ``--json``, against one store filled by the
official SDKs through ``toolwatch serve`` (the script of ``tests/analyzers/test_report.py``, whose figures
are counted by hand there); the documented fields and exit codes; and each mistake ending in a short
message, with no traceback.

The store is filled once for the module; every command reads it through the running serve, many at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
from collections.abc import AsyncIterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.analyzers.test_report import run_script
from tests.fakes.upstreams import FakeUpstream
from tests.harness import ServeProcess, run_cli
from toolwatch.cli import main

pytestmark = pytest.mark.asyncio(loop_scope="module")

COMMANDS = (
    "serve", "demo", "migrate", "calls", "report", "sessions", "session", "reclassify", "deadletter", "delete",
    "alerts", "check", "compare",
)  # fmt: skip
# the README's report fields (Reliability metrics): fields may be added, never renamed
REPORT_FIELDS = {
    "model", "upstream", "llm_calls", "tool_calls", "malformed_calls", "malformed_rate", "malformed_by_kind",
    "tool_errors", "tool_error_rate", "sessions", "open_sessions", "abandoned_sessions", "successful_sessions",
    "session_success_rate", "failed_steps", "retries", "recovered_failures", "recovery_rate", "cascade_sessions",
    "cascade_rate", "loop_sessions", "http_error_rate", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms",
    "input_tokens", "output_tokens",
}  # fmt: skip
CALL_FIELDS = {
    "call_id", "ts", "upstream", "api", "endpoint", "model", "model_requested", "model_returned", "stream", "status",
    "outcome", "error", "parse_status", "parse_error", "finish_reason", "input_tokens", "cache_read_tokens",
    "cache_write_tokens", "output_tokens", "latency_ms", "ttfb_ms", "session_id", "agent", "user_id",
    "tool_call_count", "tool_result_count", "tool_calls",
}  # fmt: skip
TOOL_CALL_FIELDS = {
    "tool_call_id", "name", "raw_arguments", "arguments", "malformed_kind", "outcome", "error_rule", "call_index",
}  # fmt: skip
VERBATIM = {"raw_arguments", "result_head", "properties"}
ISO_WITH_ZONE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)$")


class Store:
    def __init__(self, serve: ServeProcess, data: Path) -> None:
        self.serve, self.data = serve, data

    async def cli(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        return await run_cli(*args, "--store", self.serve.store, cwd=self.data, env=env)

    async def json(self, *args: str) -> Any:
        rc, out, err = await self.cli(*args, "--json")
        assert rc == 0, err
        assert "Traceback" not in err
        return json.loads(out)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def store(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Store]:
    data = tmp_path_factory.mktemp("cli-ux")
    async with FakeUpstream() as fake:
        serve = await ServeProcess(data, fake.url).start()
        try:
            await run_script(serve, fake, headers=True)  # type: ignore[arg-type]
            await serve.wait_for(lambda s: s.get("calls_written", 0) >= 21 and s.get("tool_results_written", 0) >= 12)
            yield Store(serve, data)
        finally:
            assert await serve.stop() == 0


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``main`` itself, for what needs no process of its own (the umask it sets is put back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    try:
        rc = main(list(args))
    finally:
        os.umask(mask)
    out, err = capsys.readouterr()
    return rc, out, err


def no_empty_strings(value: Any, where: str = "") -> list[str]:
    """Paths of "" values (missing values must be null), outside the verbatim fields."""
    if value == "":
        return [where]
    if isinstance(value, dict):
        return [p for k, v in value.items() if k not in VERBATIM for p in no_empty_strings(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in no_empty_strings(v, f"{where}[{i}]")]
    return []


# -- plain text ----------------------------------------------------------------------------------------------

PLAIN = (
    ("calls", "--last", "50"),
    ("report", "--since", "1h"),
    ("sessions", "--since", "1h"),
    ("session", "h:s3"),
    ("alerts",),
    ("alerts", "silences"),
    ("check",),
    ("compare", "--agent", "x", "--before", "gpt-a", "--after", "claude-b"),
    ("reclassify", "--since", "1h"),
    ("deadletter", "list"),
    ("delete", "--user", "nobody"),
)


async def test_every_reading_command_prints_plain_text_with_zoned_times_and_no_none(store: Store) -> None:
    results = await asyncio.gather(*(store.cli(*args) for args in PLAIN))
    for args, (rc, out, err) in zip(PLAIN, results, strict=True):
        assert rc == 0, (args, err)
        assert out.strip() and "Traceback" not in err, args
        assert "None" not in out and "\x1b" not in out, (args, out)  # no Python None, no escape codes in a pipe
        assert not re.search(r"\d\d:\d\d:\d\d(\.\d+)?(?![\d.]*Z)", out), (args, out)  # every time has its zone
    calls, _, sessions, timeline = (out for _, out, _ in results[:4])
    assert "openai/gpt-a" in calls and "anthropic/claude-b" in calls and "-> #0 lookup(" in calls
    assert 'lookup({"key": ) id=' in calls and "[arguments not a JSON object]  malformed: invalid_json" in calls
    assert re.search(r"h:s7 +claude-b +open", sessions) and re.search(
        r"h:s3 +gpt-a +failed .*\[cascade, loop\]", sessions
    )
    assert "<- FIRST FAILURE (never recovered)" in timeline and "MALFORMED:unknown_tool" in timeline
    assert results[6][1].startswith("ok: no regression alert open for any agent")
    assert results[10][1].strip() == "nothing to delete: no calls for user 'nobody'"


async def test_the_report_reads_for_a_newcomer(store: Store) -> None:
    rc, out, err = await store.cli("report", "--since", "1h")
    assert rc == 0, err
    lines = out.splitlines()
    assert re.fullmatch(r"toolwatch report  \d{4}-\d\d-\d\d \d\d:\d\dZ to \d{4}-\d\d-\d\d \d\d:\d\dZ \(1h\)", lines[0])
    header = next(line for line in lines if line.startswith("model "))
    assert re.findall(r"\S+(?: \S+)?", header) == [
        "model", "calls", "tool calls", "malformed", "tool err", "retries", "sessions", "open", "success",
        "recovery", "cascade", "loops", "http err", "p50 ms", "p95 ms",
    ]  # fmt: skip
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.startswith(("gpt-a ", "claude-b "))}
    # calls, tool calls, malformed, tool err, retries, sessions (ended), open, success, recovery, cascade, loops,
    # http err: the figures counted by hand in tests/analyzers/test_report.py
    assert rows["gpt-a"][:12] == ["11", "6", "66.7%", "66.7%", "1", "4", "0", "75.0%", "25.0%", "25.0%", "1", "9.1%"]
    assert rows["claude-b"][:12] == ["10", "7", "14.3%", "16.7%", "0", "3", "1", "66.7%", "50.0%", "33.3%", "1", "0.0%"]
    assert re.search(r"^  gpt-a +unknown_tool 3, invalid_json 1$", out, re.M)
    assert re.search(r"^  claude-b +schema_violation 1$", out, re.M)
    assert "open sessions, in no rate until they end: claude-b 1" in out
    assert "least reliable: gpt-a — malformed rate 66.7% vs 14.3% for claude-b (6 and 7 tool calls)" in out
    assert "columns" in lines and any(line.split()[:1] == ["retries"] for line in lines)


async def test_colour_only_on_a_terminal(
    store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rc, plain, _ = in_process(capsys, "report", "--since", "1h", "--store", store.serve.store)
    monkeypatch.setenv("FORCE_COLOR", "1")
    rc2, forced, _ = in_process(capsys, "report", "--since", "1h", "--store", store.serve.store)
    assert rc == rc2 == 0
    assert "\x1b[" not in plain and "\x1b[" in forced
    assert re.sub(r"\x1b\[[0-9;]*m", "", forced).split("\n")[0] == plain.split("\n")[0]


# -- --json --------------------------------------------------------------------------------------------------


async def test_every_command_takes_json_with_named_fields_and_nulls(store: Store, tmp_path: Path) -> None:
    fresh = run_cli("migrate", "--json", "--store", f"chdb://{tmp_path / 'fresh'}", cwd=tmp_path)
    *found, (rc, out, err) = await asyncio.gather(*(store.json(*args) for args in PLAIN), fresh)
    assert rc == 0, err
    found.append(json.loads(out))
    for args, value in zip([*PLAIN, ("migrate",)], found, strict=True):
        assert no_empty_strings(value) == [], args
        items = value if isinstance(value, list) else [value]
        assert all(isinstance(item, dict) for item in items), args  # objects with named fields
    calls, report, sessions, timeline, alerts, silences, check, compare, reclassify, dead, delete, migrate = found
    assert all(set(c) >= CALL_FIELDS for c in calls) and len(calls) == 21
    tool_calls = [tc for c in calls for tc in c["tool_calls"]]
    assert len(tool_calls) == 13 and all(set(tc) == TOOL_CALL_FIELDS for tc in tool_calls)
    bad = next(tc for tc in tool_calls if tc["raw_arguments"] == '{"key": ')
    assert (bad["arguments"], bad["malformed_kind"], bad["outcome"], bad["error_rule"]) == (
        None, "invalid_json", "error", "error_prefix"
    )  # fmt: skip
    good = next(tc for tc in tool_calls if tc["raw_arguments"] == '{"key": "b"}')
    assert (good["arguments"], good["malformed_kind"], good["outcome"], good["error_rule"]) == (
        {"key": "b"},
        None,
        "ok",
        None,
    )
    assert {tc["outcome"] for tc in tool_calls} == {"ok", "error", "pending"}  # s7's call waits for its result
    assert all(ISO_WITH_ZONE.match(c["ts"]) for c in calls)
    assert all(c["user_id"] is None and c["agent"] is None for c in calls)  # no such header: null, not ""

    by_model = {r["model"]: r for r in report}
    assert set(by_model) == {"gpt-a", "claude-b"} and all(set(r) >= REPORT_FIELDS for r in report)
    assert (by_model["gpt-a"]["malformed_calls"], by_model["gpt-a"]["retries"]) == (4, 1)
    assert by_model["claude-b"]["malformed_by_kind"] == {"schema_violation": 1}
    assert by_model["claude-b"]["open_sessions"] == 1

    assert {s["session"] for s in sessions} == {f"h:s{i}" for i in range(1, 9)}
    assert all(ISO_WITH_ZONE.match(s["first_ts"]) and ISO_WITH_ZONE.match(s["last_ts"]) for s in sessions)
    assert [s["failed"] for s in timeline] == [True, True, True, False]
    assert timeline[0]["tool_calls"][0]["malformed_kind"] == "unknown_tool"
    assert alerts == [] and silences == []
    assert (check["open"], check["alerts"], check["agent"]) == (0, [], None) and ISO_WITH_ZONE.match(check["since"])
    assert (compare["before"], compare["after"]) == ("gpt-a", "claude-b") and ISO_WITH_ZONE.match(compare["until"])
    assert reclassify["changed"] == 0 and reclassify["examined"] >= 12 and ISO_WITH_ZONE.match(reclassify["since"])
    assert dead == []
    assert delete["calls"] == 0 and set(delete["rows"]) >= {"llm_calls", "tool_calls"}
    assert len(migrate["applied"]) >= 10 and set(migrate["applied"][0]) == {"version", "name"}


async def test_alert_writes_take_json_and_an_unknown_id_is_not_found(store: Store) -> None:
    silence = await store.json("alerts", "silence", "--agent", "bot", "--for", "2h", "--comment", "canary")
    assert ISO_WITH_ZONE.match(silence["until"]) and silence["agent"] == "bot"
    assert [s["id"] for s in await store.json("alerts", "silences")] == [silence["id"]]
    ended = await store.json("alerts", "unsilence", silence["id"])
    assert ended["id"] == silence["id"]
    assert await store.json("alerts", "silences") == []
    for args in (("alerts", "ack", "no-such-alert"), ("alerts", "unsilence", "no-such-silence")):
        rc, out, err = await store.cli(*args, "--json")
        assert (rc, out) == (1, ""), (args, err)
        assert err.count("\n") == 1 and err.startswith("toolwatch: no ") and "Traceback" not in err


async def test_demo_prints_json_lines(tmp_path: Path) -> None:
    rc, out, err = await run_cli(
        "demo", "--sessions", "2", "--latency", "0", "--json", "--keep", str(tmp_path / "d"), cwd=tmp_path, timeout=180
    )
    assert rc == 0, err[-2000:]
    started, done = (json.loads(line) for line in out.splitlines())
    assert started["url"].startswith("http://127.0.0.1:") and started["dashboard"].endswith("/_toolwatch/")
    assert done["sessions"] == 2 and done["llm_calls"] > 0 and done["kept"] is True


# -- mistakes ------------------------------------------------------------------------------------------------

SINCE = r"^toolwatch: --since 'yesterday' is not a duration like 15m, 24h or 7d, and not an ISO-8601 time"
LAST = r"error: --last must be between 1 and 10000, got 0$"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("report", "--since", "yesterday"), SINCE),
        (("sessions", "--since", "yesterday"), SINCE),
        (("session", "h:s1", "--since", "yesterday"), SINCE),
        (("check", "--since", "yesterday"), SINCE),
        (("alerts", "--since", "yesterday"), SINCE),
        (("reclassify", "--since", "yesterday"), SINCE),
        (("compare", "--agent", "a", "--before", "b", "--after", "c", "--since", "yesterday"), SINCE),
        (("report", "--until", "soon"), r"^toolwatch: --until 'soon' is not a duration like 15m"),
        (("report", "--since", "2026-01-02", "--until", "2026-01-01"), r"^toolwatch: --since must be before --until"),
        (("report", "--abandon", "forever"), r"^toolwatch: --abandon 'forever' is not a duration like 90s"),
        (("calls", "--last", "0"), rf"^toolwatch calls: {LAST}"),
        (("sessions", "--last", "0"), rf"^toolwatch sessions: {LAST}"),
        (("alerts", "--last", "0"), rf"^toolwatch alerts: {LAST}"),
        (("migrate", "--bogus"), r"^toolwatch migrate: error: unrecognized arguments: --bogus$"),
        (("alerts", "ack"), r"^toolwatch alerts: error: alerts ack needs an id"),
        (("alerts", "silence", "--agent", "bot"), r"^toolwatch alerts: error: a silence needs --for, a duration"),
        (("deadletter", "lst"), r"^toolwatch deadletter: error: unknown action 'lst': did you mean list\?$"),
        (("compare", "--agent", "a"), r"^toolwatch compare: error: the following arguments are required: --before"),
    ],
)
async def test_a_mistake_ends_in_a_short_message(
    store: Store, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], says: str
) -> None:
    rc, out, err = in_process(capsys, *args, "--store", store.serve.store)
    assert rc == 2 and out == "", err
    assert re.search(says, err, re.M), err
    lines = err.strip().splitlines()
    if "error:" in lines[0]:  # a usage error: the message, then this command's usage (not the top level's)
        assert len(lines) == 2 and lines[1].startswith(f"usage: toolwatch {args[0]} "), err
    else:
        assert len(lines) == 1, err


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("session", "h:nope"), 1, r"^toolwatch: no session 'h:nope' from .*Z \(7d\): `toolwatch sessions` lists"),
        (("reclassify", "--jsn"), 2, r"^toolwatch reclassify: error: .* --jsn \(did you mean --json\?\)$"),
    ],
)
async def test_a_mistake_in_a_real_process(store: Store, args: tuple[str, ...], code: int, says: str) -> None:
    rc, out, err = await store.cli(*args)
    assert (rc, out) == (code, ""), err
    assert "Traceback" not in err and re.search(says, err, re.M), err
    assert len(err.strip().splitlines()) == (2 if code == 2 else 1), err


async def test_an_unwritable_store_is_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    store = f"chdb://{tmp_path / 'file' / 'store'}"
    for command in ("report", "migrate", "calls"):
        rc, out, err = await run_cli(command, "--store", store, cwd=tmp_path)
        assert rc == 2 and out == "" and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1 and f"{tmp_path / 'file'} is a file, not a folder" in err, err
    rc, _, err = await run_cli("migrate", "--debug", "--store", store, cwd=tmp_path)
    assert rc != 0 and "Traceback" in err and "is a file, not a folder" in err
    assert not (tmp_path / "file").is_dir()


async def test_unknown_command_suggests_the_close_one() -> None:
    rc, out, err = await run_cli("reprot")
    assert (rc, out) == (2, "")
    assert err.splitlines() == [
        "toolwatch: error: unknown command 'reprot': did you mean report?",
        "usage: toolwatch [options] COMMAND ...   (`toolwatch --help` shows more)",
    ]


# -- help, version, completion -------------------------------------------------------------------------------


async def test_help_describes_every_command_with_examples_and_environment(capsys: pytest.CaptureFixture[str]) -> None:
    help_of = {}
    for command in (*COMMANDS, None):
        rc, out, err = in_process(capsys, *([command] if command else []), "--help")
        assert rc == 0 and err == "", command
        assert "examples:\n  toolwatch " in out and "environment:\n" in out and "exit codes: 0 ok" in out, command
        described = out.split("\noptions:")[0].split("\n\n", 1)[1]  # between the usage and the options
        assert len(described) > 60, command
        help_of[command or "toolwatch"] = out
    assert "TOOLWATCH_STORE" in help_of["report"] and "TOOLWATCH_ADMIN_TOKEN" in help_of["calls"]
    for field in ("malformed", "tool err", "retries", "open", "success", "cascade", "http err"):
        assert re.search(rf"^  {field} +\S", help_of["report"], re.M), field
    for base in (
        "OPENAI_BASE_URL=http://127.0.0.1:8787/openai/v1",
        "ANTHROPIC_BASE_URL=http://127.0.0.1:8787/anthropic",
    ):
        assert base in help_of["toolwatch"] and base in help_of["serve"]
    assert all(f"\n    {c}" in help_of["toolwatch"] for c in COMMANDS)  # every command listed with its summary
    assert in_process(capsys) == (2, help_of["toolwatch"], "")  # no command: the help, and a usage error


async def test_version_and_completion(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = in_process(capsys, "--version")
    assert rc == 0 and out.strip() == f"toolwatch {version('toolwatch')}"
    rc, script, _ = in_process(capsys, "--print-completion", "bash")
    assert rc == 0 and "complete" in script and "reclassify" in script


# -- where the data goes -------------------------------------------------------------------------------------


async def test_the_default_store_is_per_user_and_an_old_one_here_is_used_with_a_notice(tmp_path: Path) -> None:
    home = tmp_path / "xdg"
    rc, out, err = await run_cli("migrate", "--json", cwd=tmp_path, env={"XDG_DATA_HOME": str(home)})
    assert rc == 0 and err == "", err
    assert (home / "toolwatch" / "store" / "metadata").is_dir()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "toolwatch-data").mkdir(parents=True)
    rc, out, err = await run_cli("calls", "--json", cwd=elsewhere, env={"XDG_DATA_HOME": str(home)})
    assert (rc, json.loads(out), err) == (0, [], "")  # the same store from another folder
    rc, out, err = await run_cli("migrate", "--store", f"chdb://{elsewhere / 'toolwatch-data' / 'store'}")
    assert rc == 0, err
    rc, out, err = await run_cli("calls", "--json", cwd=elsewhere, env={"XDG_DATA_HOME": str(home)})
    assert rc == 0 and json.loads(out) == []
    assert err == f"toolwatch: using the store found in this folder, {elsewhere / 'toolwatch-data' / 'store'}" + (
        " (--store or TOOLWATCH_STORE chooses another)\n"
    )


# -- last: it changes the store ------------------------------------------------------------------------------


async def test_delete_then_the_session_is_not_found(store: Store) -> None:
    done = await store.json("delete", "--session", "h:s1")
    assert done["calls"] == 2 and done["rows"]["llm_calls"] == 2
    rc, out, err = await store.cli("session", "h:s1", "--json")
    assert (rc, out) == (1, "") and err.startswith("toolwatch: no session 'h:s1'")
    started = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    assert all(dt.datetime.fromisoformat(c["ts"]) > started for c in await store.json("calls"))
