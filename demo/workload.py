"""The scripted multi-agent workload: agent sessions sent through toolwatch's proxy until told to stop.

`run_demo` starts sessions at `pace` per second (at most `concurrency` at once), each one an agent from
`agents.AGENTS` chosen by weight, and waits for the running ones when it stops: after `sessions` sessions, or
once `duration` seconds have passed, or never (until cancelled). A session is an agent loop: ask the model,
run the tool calls it made (the agent checks each call first: an unknown tool, arguments that are not JSON or
break the schema get an ``Error: ...`` result, as agent frameworks answer them), send the results back, and
stop at a final answer. A reply that writes its call into the text gets a note asking for a proper call; at
`max_steps` the agent asks for a final answer. Refused requests (429, 5xx) are retried twice.

Everything the agents choose (agent, task, streaming, headers, tool results) comes from `random.Random`
seeded with `seed` and the session's number, so a run with the same seed sends the same workload.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections import Counter
from dataclasses import dataclass, field
from random import Random

import aiohttp

from toolwatch.demo.agents import AGENTS, Agent, Route
from toolwatch.demo.dialects import TRANSCRIPTS, Answer, Outcome, Refused, ToolCall, Transcript
from toolwatch.demo.tools import CATALOG, IN_TEXT_NOTE, STEP_LIMIT_NOTE, check, is_failure

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
UNREACHABLE_AFTER = 5  # sessions in a row that could not reach the proxy: the run stops
_WRITTEN_CALL = re.compile(r"<tool_call>|```json\s*\{\s*\"name\"")


class DemoError(Exception):
    """The workload cannot go on (the proxy is unreachable)."""


@dataclass
class DemoStats:
    """What the workload did; filled in while it runs (pass your own to `run_demo` to watch it)."""

    sessions: int = 0  # finished, whatever their outcome
    llm_calls: int = 0
    refused_calls: int = 0  # answered with an error status
    tool_calls: int = 0
    tool_errors: int = 0  # results that report a failure (rejected calls included)
    rejected_calls: int = 0  # calls the agent could not run: unknown tool, bad JSON, schema
    calls_in_text: int = 0  # replies with a call written into the text
    failed_sessions: int = 0  # ended by a transport error or refusals past the retries
    by_agent: Counter[str] = field(default_factory=Counter)  # sessions
    by_model: Counter[str] = field(default_factory=Counter)  # LLM calls
    errors: list[str] = field(default_factory=list)  # the last few transport errors
    _unreachable: int = field(default=0, repr=False)  # sessions in a row that could not reach the proxy


@dataclass(frozen=True)
class Session:
    number: int
    agent: Agent
    route: Route
    task: str
    stream: bool
    headers: dict[str, str]


class Workload:
    """The sessions of a run, in order. `plan(n)` must be called for n = 0, 1, 2, ..."""

    def __init__(self, seed: int, switch_at: int, run_id: str = "") -> None:
        self.seed = seed
        self.switch_at = switch_at
        self.run_id = run_id or secrets.token_hex(3)
        self._pick = Random(f"{seed}|agents")

    def plan(self, number: int) -> Session:
        agent = self._pick.choices(AGENTS, [a.weight for a in AGENTS])[0]
        rng = Random(f"{self.seed}|session|{number}")
        task = agent.task(rng, number + 1)
        stream = rng.random() < agent.stream
        headers: dict[str, str] = {}
        if agent.headers:
            headers["Toolwatch-Agent"] = agent.name
            if rng.random() < agent.session_header:
                headers["Toolwatch-Session-Id"] = f"demo-{self.run_id}-{number + 1:05d}"
        return Session(number, agent, agent.route(number >= self.switch_at), task, stream, headers)


async def run_demo(
    proxy_url: str,
    *,
    seed: int = 7,
    sessions: int | None = None,
    duration: float | None = None,
    pace: float = 2.0,
    concurrency: int = 16,
    tool_delay: float = 0.3,
    switch_at: int | None = None,
    stats: DemoStats | None = None,
) -> DemoStats:
    """Run the workload against toolwatch at `proxy_url` (`http://127.0.0.1:8787`); see the module docstring.

    `pace` is sessions started per second (0: as fast as `concurrency` allows); `tool_delay` the mean seconds
    a fake tool takes. `support-bot` moves from `gpt-4o` to `glm-4.5` at session `switch_at` (default: half
    of `sessions`, or of the sessions `duration` allows at this pace, else the 40th). Raises `DemoError` when
    the proxy cannot be reached.
    """
    if pace < 0 or concurrency < 1 or tool_delay < 0:
        raise ValueError("pace and tool_delay must be >= 0 and concurrency >= 1")
    if switch_at is None:
        planned = sessions if sessions is not None else int(duration * pace) if duration and pace else 80
        switch_at = max(1, planned // 2)
    stats = stats if stats is not None else DemoStats()
    workload = Workload(seed, switch_at)
    loop = asyncio.get_running_loop()
    deadline = None if duration is None else loop.time() + duration
    slots = asyncio.Semaphore(concurrency)
    base = proxy_url.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=300, sock_connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as http, asyncio.TaskGroup() as group:
        number = 0
        while sessions is None or number < sessions:
            if (deadline is not None and loop.time() >= deadline) or stats._unreachable >= UNREACHABLE_AFTER:
                break
            await slots.acquire()
            session = workload.plan(number)
            group.create_task(_guarded(http, base, session, stats, slots, tool_delay, seed))
            number += 1
            if pace > 0:
                await asyncio.sleep(1 / pace)
    if stats._unreachable >= UNREACHABLE_AFTER:
        raise DemoError(f"cannot reach toolwatch at {base}: {stats.errors[-1] if stats.errors else 'no answer'}")
    return stats


async def _guarded(
    http: aiohttp.ClientSession,
    base: str,
    session: Session,
    stats: DemoStats,
    slots: asyncio.Semaphore,
    tool_delay: float,
    seed: int,
) -> None:
    try:
        await run_session(http, base, session, stats, tool_delay, Random(f"{seed}|tools|{session.number}"))
        stats._unreachable = 0
    except Exception as e:  # noqa: BLE001 - one odd answer must not end a demo that runs until Ctrl-C
        stats.failed_sessions += 1
        if isinstance(e, aiohttp.ClientConnectionError):
            stats._unreachable += 1
        stats.errors = [*stats.errors[-9:], f"{session.agent.name}: {type(e).__name__}: {e}"]
    finally:
        stats.sessions += 1
        stats.by_agent[session.agent.name] += 1
        slots.release()


async def run_session(
    http: aiohttp.ClientSession, base: str, session: Session, stats: DemoStats, tool_delay: float, rng: Random
) -> None:
    """One agent loop, from the task to a final answer (or the step limit)."""
    agent, route = session.agent, session.route
    transcript = TRANSCRIPTS[route.api](route.mount, agent.key, agent.system, session.task, agent.tools)
    for step in range(agent.max_steps + 1):
        answer = await _ask(http, base, transcript, session, stats)
        transcript.add_answer(answer)
        if step == agent.max_steps:
            return
        note = STEP_LIMIT_NOTE if step + 1 == agent.max_steps else ""
        if not answer.calls:
            if not _WRITTEN_CALL.search(answer.text):
                return  # the final answer
            stats.calls_in_text += 1
            transcript.add_user(note or IN_TEXT_NOTE)
            continue
        outcomes = [await _run_tool(agent, call, rng, tool_delay, stats) for call in answer.calls]
        transcript.add_results(outcomes, note)


async def _ask(
    http: aiohttp.ClientSession, base: str, transcript: Transcript, session: Session, stats: DemoStats
) -> Answer:
    for attempt in range(3):
        stats.llm_calls += 1
        stats.by_model[session.route.model] += 1
        try:
            return await transcript.send(http, base, session.route.model, session.stream, session.headers)
        except Refused as e:
            stats.refused_calls += 1
            if e.status not in RETRY_STATUSES or attempt == 2:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


async def _run_tool(agent: Agent, call: ToolCall, rng: Random, tool_delay: float, stats: DemoStats) -> Outcome:
    stats.tool_calls += 1
    content = _reject(agent, call)
    if content:
        stats.rejected_calls += 1
    else:
        if tool_delay:
            await asyncio.sleep(tool_delay * rng.uniform(0.3, 1.7))
        content = CATALOG[call.name].run(json.loads(call.arguments), rng)
    failed = is_failure(content)
    stats.tool_errors += failed
    return Outcome(call, content, failed)


def _reject(agent: Agent, call: ToolCall) -> str:
    """The agent's answer to a call it cannot run, or "" when it can."""
    if call.name not in agent.tools:
        return f"Error: unknown tool {call.name!r}. Available tools: {', '.join(agent.tools)}"
    try:
        args = json.loads(call.arguments)
    except ValueError as e:
        return f"Error: the arguments of {call.name} are not valid JSON ({e})"
    problem = check(CATALOG[call.name].schema, args)
    return f"Error: invalid arguments for {call.name}: {problem}" if problem else ""
