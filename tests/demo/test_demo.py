"""`toolwatch demo`'s pieces end to end: the scripted upstream, `toolwatch serve` as a subprocess, a bounded
workload through it, and what the CLI then reads from the store: every reliability feature has data."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness import run_cli

SESSIONS = 80


async def _cli_json(store: str, cwd: Path, *args: str) -> Any:
    rc, out, err = await run_cli(*args, "--json", "--store", store, cwd=cwd)
    assert rc == 0, err
    return json.loads(out)


@dataclass
class Ran:
    """What `toolwatch demo` said it did."""

    sessions: int
    llm_calls: int
    store: str


async def test_a_bounded_demo_run_records_every_feature(tmp_path: Path) -> None:
    """`toolwatch demo` itself, bounded: the command starts the upstream, serve and the agents, and stops."""
    keep = tmp_path / "demo"
    rc, out, err = await run_cli(
        "demo", "--sessions", str(SESSIONS), "--latency", "0", "--keep", str(keep), cwd=tmp_path, timeout=180
    )
    assert rc == 0, err[-3000:]
    assert "dashboard   http://127.0.0.1:" in out and "/_toolwatch/" in out
    done = re.search(r"demo done: (\d+) sessions, (\d+) LLM calls", out)
    assert done is not None, out
    stats = Ran(int(done.group(1)), int(done.group(2)), f"chdb://{keep / 'store'}")
    assert stats.sessions == SESSIONS

    report = {r["model"]: r for r in await _cli_json(stats.store, tmp_path, "report", "--since", "1h")}
    assert set(report) == {"gpt-4o", "claude-sonnet-4-5", "glm-4.5", "gemini-2.5-flash"}
    assert sum(r["llm_calls"] for r in report.values()) == stats.llm_calls
    kinds: dict[str, int] = defaultdict(int)
    for row in report.values():
        for kind, n in row["malformed_by_kind"].items():
            kinds[kind] += n
    assert {k for k, n in kinds.items() if n > 0} == {
        "truncated",
        "invalid_json",
        "unknown_tool",
        "schema_violation",
        "in_text",
    }
    assert sum(r["recovered_failures"] for r in report.values()) > 0
    assert sum(r["cascade_sessions"] for r in report.values()) > 0
    assert sum(r["loop_sessions"] for r in report.values()) > 0
    assert sum(r["tool_errors"] for r in report.values()) > 0
    assert sum(r["sessions"] for r in report.values()) == SESSIONS
    # clearly different reliability: the flaky open model far above the middling one, far above the reliable one
    gpt, claude, glm = (report[m]["malformed_rate"] for m in ("gpt-4o", "claude-sonnet-4-5", "glm-4.5"))
    assert gpt < 0.05 and 2 * gpt < claude < 0.15 and glm > 2 * claude and glm > 0.2
    assert report["glm-4.5"]["cascade_sessions"] > report["gpt-4o"]["cascade_sessions"]

    sessions = await _cli_json(stats.store, tmp_path, "sessions", "--since", "1h", "--last", "1000")
    assert len(sessions) == SESSIONS
    assert all(s["outcome"] in ("success", "failed") for s in sessions)  # every session ended
    assert any(s["cascade"] for s in sessions) and any(s["loop"] for s in sessions)
    inferred = [s for s in sessions if s["session"].startswith("k:")]
    # sessions without Toolwatch-Session-Id are inferred: the agent that sends no headers, and a few others
    assert {s["agent"] is None for s in inferred} == {True, False}  # --json: null, never ""

    calls = await _cli_json(stats.store, tmp_path, "calls", "--last", "10000")
    assert len(calls) == stats.llm_calls
    first_seen: dict[str, str] = {}
    for call in sorted((c for c in calls if c["agent"] == "support-bot"), key=lambda c: c["ts"]):
        first_seen.setdefault(call["model"], call["ts"])
    assert list(first_seen) == ["gpt-4o", "glm-4.5"]  # one agent, its model switched halfway
    upstreams = {c["upstream"] for c in calls}
    assert upstreams == {"openai", "anthropic", "gemini", "glm"}
    assert {c["stream"] for c in calls} == {True, False}
