"""The definitions alerts stand on, driven by the frameworks themselves through the proxy.

- The openai SDK retrying a 500 by itself (three failed attempts, then an answer) makes one step, no failed
  step and no cascade; every attempt still counts in ``llm_calls`` and ``http_error_rate``.
- An OpenAI Agents SDK run whose tool raises reports only the SDK's default text to the model; it counts
  as a tool error (rule ``framework_error``), so the session is not a success.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.fakes.upstreams import FakeUpstream
from tests.harness import Harness
from toolwatch.analyzers import runner
from toolwatch.analyzers.params import analyzer_params, report_params
from toolwatch.demo.script import Reply, ToolCallSpec

LOOKUP = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
FAST_RETRY = {"retry-after-ms": "5"}  # the SDK honours it: its own backoff would take seconds


def report(tw: Harness) -> dict[str, Any]:
    params = report_params(since="1h")
    return {r["model"]: r for r in tw.store.run(lambda c: runner.run(c, "report", **params))}


def sessions(tw: Harness) -> list[dict[str, Any]]:
    params = analyzer_params("sessions", {"since": "1h", "last": "100"})
    return list(tw.store.run(lambda c: runner.run(c, "sessions", **params)))


async def test_an_sdk_retrying_a_500_three_times_makes_one_step(tw: Harness, fake: FakeUpstream) -> None:
    client = openai.AsyncOpenAI(base_url=f"{tw.url}/openai/v1", api_key="k", max_retries=3)
    boom = Reply(status=500, error_type="server_error", error_message="boom", headers=FAST_RETRY)
    fake.push(boom, boom, boom, Reply(tool_calls=(ToolCallSpec("lookup", '{"key": "a"}'),)))
    messages: list[Any] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "find a"}]
    first = await client.chat.completions.create(model="gpt-r", messages=messages, tools=LOOKUP)  # type: ignore[arg-type]
    call = first.choices[0].message
    assert call.tool_calls
    messages += [
        call.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.tool_calls[0].id, "content": "value a"},
    ]
    fake.push(Reply(text="a is value a"))
    await client.chat.completions.create(model="gpt-r", messages=messages, tools=LOOKUP)  # type: ignore[arg-type]
    await client.close()
    await tw.flush(expect=5)

    row = report(tw)["gpt-r"]
    assert (row["llm_calls"], row["retries"], row["failed_steps"]) == (5, 3, 0)
    assert row["http_error_rate"] == pytest.approx(3 / 5)
    assert (row["sessions"], row["successful_sessions"], row["cascade_sessions"]) == (1, 1, 0)
    [session] = sessions(tw)
    assert (session["steps"], session["outcome"]) == (2, "success")


async def test_an_agents_sdk_tool_failure_counts_as_a_tool_error(tw: Harness, fake: FakeUpstream) -> None:
    agents = pytest.importorskip("agents")
    agents.set_tracing_disabled(True)

    @agents.function_tool
    def lookup(key: str) -> str:
        """Look a key up."""
        raise RuntimeError(f"backend down for {key}")

    client = openai.AsyncOpenAI(base_url=f"{tw.url}/openai/v1", api_key="k", max_retries=0)
    agent = agents.Agent(
        name="support",
        instructions="Answer with the lookup tool.",
        tools=[lookup],
        model=agents.OpenAIResponsesModel(model="gpt-agents", openai_client=client),
    )
    fake.push(Reply(tool_calls=(ToolCallSpec("lookup", '{"key": "a"}'),)), Reply(text="Sorry, I could not look it up."))
    try:
        result = await agents.Runner.run(agent, "what is a?")
    finally:
        await client.close()
    assert "could not" in result.final_output
    await tw.flush(expect=2)

    [row] = tw.rows("SELECT error_rule, content FROM tool_results")
    assert row == {
        "error_rule": "framework_error",
        "content": "An error occurred while running the tool. Please try again.",
    }
    got = report(tw)["gpt-agents"]
    assert (got["tool_errors"], got["successful_sessions"], got["sessions"]) == (1, 0, 1)
