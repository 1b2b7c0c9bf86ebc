"""The reliability report against scripted agent sessions driven through the proxy by the official SDKs.

Every expected figure below is counted by hand from the script, per the README's definitions.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.upstreams import FakeUpstream
from tests.harness import Harness
from toolwatch.analyzers import runner
from toolwatch.analyzers.params import report_params
from toolwatch.demo.script import Reply, ToolCallSpec

LOOKUP = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
SEARCH = [
    {
        "name": "search",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    }
]


class OpenAIAgent:
    """A minimal agent loop: every turn resends the conversation, with tool results for the last calls."""

    def __init__(self, client: openai.AsyncOpenAI, session: str, header: bool, model: str = "gpt-a") -> None:
        self.client, self.model = client, model
        self.headers = {"Toolwatch-Session-Id": session} if header else {}
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You are a careful agent."},
            {"role": "user", "content": f"task for {session}"},
        ]

    async def step(self, fake: FakeUpstream, reply: Reply, results: list[str] | None = None) -> Any:
        fake.push(reply)
        r = await self.client.chat.completions.create(
            model=self.model,
            messages=self.messages,
            tools=LOOKUP,
            extra_headers=self.headers,  # type: ignore[arg-type]
        )
        msg = r.choices[0].message
        self.messages.append(msg.model_dump(exclude_none=True))
        self.pending = [c.id for c in msg.tool_calls or []]
        return r

    def results(self, *contents: str) -> None:
        for call_id, content in zip(self.pending, contents, strict=True):
            self.messages.append({"role": "tool", "tool_call_id": call_id, "content": content})


class AnthropicAgent:
    def __init__(self, client: anthropic.AsyncAnthropic, session: str, header: bool, model: str = "claude-b") -> None:
        self.client, self.model = client, model
        self.headers = {"Toolwatch-Session-Id": session} if header else {}
        self.messages: list[dict[str, Any]] = [{"role": "user", "content": f"task for {session}"}]

    async def step(self, fake: FakeUpstream, reply: Reply) -> Any:
        fake.push(reply)
        m = await self.client.messages.create(
            model=self.model,
            max_tokens=512,
            system="You search.",
            tools=SEARCH,  # type: ignore[arg-type]
            messages=self.messages,
            extra_headers=self.headers,  # type: ignore[arg-type]
        )
        self.messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]})
        self.pending = [b.id for b in m.content if b.type == "tool_use"]
        return m

    def results(self, *results: tuple[str, bool]) -> None:
        blocks = [
            {"type": "tool_result", "tool_use_id": i, "content": c, "is_error": e}
            for i, (c, e) in zip(self.pending, results, strict=True)
        ]
        self.messages.append({"role": "user", "content": blocks})


def call(name: str, args: str) -> Reply:
    return Reply(tool_calls=(ToolCallSpec(name, args),))


FINAL = Reply(text="All done.")


async def run_script(tw: Harness, fake: FakeUpstream, headers: bool = True) -> None:
    oc = openai.AsyncOpenAI(base_url=f"{tw.url}/openai/v1", api_key="k", max_retries=0)
    ac = anthropic.AsyncAnthropic(base_url=f"{tw.url}/anthropic", api_key="k", max_retries=0)
    try:
        # S1 clean: tool call, result, final answer
        a = OpenAIAgent(oc, "s1", headers)
        await a.step(fake, call("lookup", '{"key": "a"}'))
        a.results("value a")
        await a.step(fake, FINAL)
        # S2 invalid JSON, an error result, then a good call that works, then the answer
        a = OpenAIAgent(oc, "s2", headers)
        await a.step(fake, call("lookup", '{"key": '))
        a.results("Error: invalid arguments")
        await a.step(fake, call("lookup", '{"key": "b"}'))
        a.results("value b")
        await a.step(fake, FINAL)
        # S3 cascade: three unknown tools in a row, then an answer nothing recovered
        a = OpenAIAgent(oc, "s3", headers)
        for _ in range(3):
            await a.step(fake, call("nope", "{}"))
            a.results("Error: no such tool")
        await a.step(fake, FINAL)
        # S8 an upstream 500, retried by the agent with the same request
        a = OpenAIAgent(oc, "s8", headers)
        with pytest.raises(openai.InternalServerError):
            await a.step(fake, Reply(status=500, error_type="server_error", error_message="boom"))
        a.messages.pop() if a.messages[-1].get("role") == "assistant" else None
        await a.step(fake, FINAL)

        # S4 a tool error (is_error) that the next call recovers from
        b = AnthropicAgent(ac, "s4", headers)
        await b.step(fake, call("search", '{"q": "one"}'))
        b.results(("backend down", True))
        await b.step(fake, call("search", '{"q": "two"}'))
        b.results(("found two", False))
        await b.step(fake, FINAL)
        # S5 a schema violation never recovered
        b = AnthropicAgent(ac, "s5", headers)
        await b.step(fake, call("search", '{"q": 5}'))
        b.results(("found 5", False))
        await b.step(fake, FINAL)
        # S6 a loop: the same call three times
        b = AnthropicAgent(ac, "s6", headers)
        for _ in range(3):
            await b.step(fake, call("search", '{"q": "x"}'))
            b.results(("same again", False))
        await b.step(fake, FINAL)
        # S7 left open: a tool call whose result never comes back
        b = AnthropicAgent(ac, "s7", headers)
        await b.step(fake, call("search", '{"q": "later"}'))
    finally:
        await oc.close()
        await ac.close()


def report(tw: Harness, **kw: Any) -> dict[str, dict[str, Any]]:
    params = report_params(since="1h", **kw)
    return {r["model"]: r for r in tw.store.run(lambda c: runner.run(c, "report", **params))}


EXPECTED_A = {
    "llm_calls": 11,
    "tool_calls": 6,
    "malformed_calls": 4,
    "malformed_by_kind": {"invalid_json": 1, "unknown_tool": 3},
    "tool_errors": 4,
    "sessions": 4,
    "open_sessions": 0,
    "successful_sessions": 3,
    # S8's 500 and its byte-identical retry are one step (the retry's outcome): not a failed step
    "failed_steps": 4,
    "retries": 1,
    "recovered_failures": 1,
    "cascade_sessions": 1,
    "loop_sessions": 1,  # S3 calls nope({}) three times
}
RATES_A = {
    "malformed_rate": 4 / 6,
    "tool_error_rate": 4 / 6,
    "session_success_rate": 3 / 4,
    "recovery_rate": 1 / 4,
    "cascade_rate": 1 / 4,
    "http_error_rate": 1 / 11,  # every attempt still counts here
}
EXPECTED_B = {
    "llm_calls": 10,
    "tool_calls": 7,
    "malformed_calls": 1,
    "malformed_by_kind": {"schema_violation": 1},
    "tool_errors": 1,
    "sessions": 4,
    "open_sessions": 1,
    "successful_sessions": 2,
    "failed_steps": 2,
    "retries": 0,
    "recovered_failures": 1,
    "cascade_sessions": 1,
    "loop_sessions": 1,
}
RATES_B = {
    "malformed_rate": 1 / 7,
    "tool_error_rate": 1 / 6,
    "session_success_rate": 2 / 3,
    "recovery_rate": 1 / 2,
    "cascade_rate": 1 / 3,
    "http_error_rate": 0.0,
}


def check(row: dict[str, Any], counts: dict[str, Any], rates: dict[str, float]) -> None:
    assert {k: row[k] for k in counts} == counts
    for k, v in rates.items():
        assert row[k] == pytest.approx(v), k
    assert row["latency_p50_ms"] > 0 and row["latency_p95_ms"] >= row["latency_p50_ms"]
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0 and row["ttft_p50_ms"] > 0


async def test_report_counts_with_session_headers(tw: Harness, fake: FakeUpstream) -> None:
    await run_script(tw, fake, headers=True)
    await tw.flush(expect=21)
    rows = report(tw)
    assert set(rows) == {"gpt-a", "claude-b"}
    check(rows["gpt-a"], EXPECTED_A, RATES_A)
    check(rows["claude-b"], EXPECTED_B, RATES_B)
    # with the abandonment timeout passed, the open session is abandoned (not open, and not a success)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)).isoformat()
    b = report(tw, until=later, abandon="10m")["claude-b"]
    assert b["open_sessions"] == 0 and b["sessions"] == 4 and b["successful_sessions"] == 2
    assert b["session_success_rate"] == pytest.approx(2 / 4)
    assert report(tw, model="gpt-a").keys() == {"gpt-a"}


def analyze(tw: Harness, name: str, **raw: Any) -> list[dict[str, Any]]:
    from toolwatch.analyzers.params import analyzer_params
    from toolwatch.analyzers.views import Context, view

    params = analyzer_params(name, raw)
    return tw.store.run(lambda c: view(c, name, params, Context()))  # type: ignore[no-any-return]


async def test_sessions_and_timeline(tw: Harness, fake: FakeUpstream) -> None:
    await run_script(tw, fake, headers=True)
    await tw.flush(expect=21)
    sessions = {r["session"]: r for r in analyze(tw, "sessions", since="1h")}
    assert set(sessions) == {f"h:s{i}" for i in range(1, 9)}
    assert {k: v["outcome"] for k, v in sessions.items()} == {
        "h:s1": "success",
        "h:s2": "success",
        "h:s3": "failed",
        "h:s8": "success",
        "h:s4": "success",
        "h:s5": "failed",
        "h:s6": "success",
        "h:s7": "open",
    }
    assert (sessions["h:s3"]["longest_failure_run"], sessions["h:s3"]["cascade"]) == (3, True)
    assert sessions["h:s6"]["loop"] is True and sessions["h:s2"]["loop"] is False
    failed = {r["session"] for r in analyze(tw, "sessions", since="1h", failed="true")}
    assert failed == {"h:s3", "h:s5"}
    only_b = {r["session"] for r in analyze(tw, "sessions", since="1h", model="claude-b")}
    assert only_b == {"h:s4", "h:s5", "h:s6", "h:s7"}

    steps = analyze(tw, "session", session="s3", since="1h")
    assert [s["failed"] for s in steps] == [True, True, True, False]
    assert [s["recovered"] for s in steps] == [False, False, False, False]
    assert steps[-1]["final_answer"] is True
    first_calls = [s["tool_calls"][0] for s in steps[:3]]
    got = [(c["name"], c["malformed_kind"], c["outcome"], c["error_rule"]) for c in first_calls]
    assert got == [("nope", "unknown_tool", "error", "error_prefix")] * 3
    open_steps = analyze(tw, "session", session="h:s7", since="1h")
    assert [c["outcome"] for c in open_steps[0]["tool_calls"]] == ["pending"]
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)).isoformat()
    abandoned = analyze(tw, "session", session="s7", since="2h", until=later)
    assert [c["outcome"] for c in abandoned[0]["tool_calls"]] == ["missing"]


async def test_report_is_the_same_without_session_headers(tw: Harness, fake: FakeUpstream) -> None:
    """Sessions inferred from the conversation's opening and tool-call ids, with no instrumentation."""
    await run_script(tw, fake, headers=False)
    await tw.flush(expect=21)
    rows = report(tw)
    check(rows["gpt-a"], EXPECTED_A, RATES_A)
    check(rows["claude-b"], EXPECTED_B, RATES_B)
    sessions = analyze(tw, "sessions", since="1h")
    assert len(sessions) == 8 and all(r["session"].startswith("k:") for r in sessions)
    # S1..S3, S8 (its 500 and the retry are one step), then S4..S7
    assert sorted(r["steps"] for r in sessions) == sorted([2, 3, 4, 1, 3, 2, 4, 1])


async def test_concurrent_sessions_with_the_same_opening_stay_apart(tw: Harness, fake: FakeUpstream) -> None:
    oc = openai.AsyncOpenAI(base_url=f"{tw.url}/openai/v1", api_key="k", max_retries=0)
    try:
        one, two = OpenAIAgent(oc, "same", False), OpenAIAgent(oc, "same", False)
        await one.step(fake, call("lookup", '{"key": "a"}'))
        await two.step(fake, call("lookup", '{"key": "a"}'))  # same opening, same call: only the id differs
        for agent, outcome in ((one, "value"), (two, "Error: denied")):
            agent.results(outcome)
        await one.step(fake, call("lookup", '{"key": "c"}'))
        await two.step(fake, FINAL)
        one.results("value c")
        await one.step(fake, FINAL)
    finally:
        await oc.close()
    await tw.flush(expect=5)
    sessions = sorted(analyze(tw, "sessions", since="1h"), key=lambda r: r["steps"])
    assert [(r["steps"], r["outcome"], r["failed_steps"]) for r in sessions] == [(2, "failed", 1), (3, "success", 0)]


async def test_agent_that_rewrites_its_system_prompt_every_turn(tw: Harness, fake: FakeUpstream) -> None:
    oc = openai.AsyncOpenAI(base_url=f"{tw.url}/openai/v1", api_key="k", max_retries=0)
    try:
        agent = OpenAIAgent(oc, "rewriter", False)
        for turn in range(3):
            agent.messages[0] = {
                "role": "system",
                "content": f"You are a careful agent. Turn {turn}, clock {turn * 7}.",
            }
            await agent.step(fake, call("lookup", f'{{"key": "{turn}"}}'))
            agent.results(f"value {turn}")
        agent.messages[0] = {"role": "system", "content": "You are a careful agent. Final turn."}
        await agent.step(fake, FINAL)
    finally:
        await oc.close()
    await tw.flush(expect=4)
    sessions = analyze(tw, "sessions", since="1h")
    assert [(r["steps"], r["outcome"]) for r in sessions] == [(4, "success")]


async def test_toolwatch_report_json_command(
    tw: Harness, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The `toolwatch report --json` command itself, with a short abandonment timeout."""
    import asyncio
    import json

    from toolwatch.cli import main

    await run_script(tw, fake, headers=True)
    await tw.flush(expect=21)
    monkeypatch.setenv("TOOLWATCH_DATABASE", tw.settings.database)
    await asyncio.sleep(1.2)  # let the open session (S7) idle past a 1 s abandonment timeout
    code = await asyncio.to_thread(
        main, ["report", "--json", "--since", "1h", "--abandon", "1s", "--store", tw.settings.store]
    )
    assert code == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    check(rows["gpt-a"], EXPECTED_A, RATES_A)
    b = rows["claude-b"]
    assert (b["sessions"], b["open_sessions"], b["abandoned_sessions"], b["successful_sessions"]) == (4, 0, 1, 2)
    assert b["session_success_rate"] == pytest.approx(2 / 4) and b["cascade_rate"] == pytest.approx(1 / 4)
