"""Both sides of the demo's wire, without sockets: the agents' transcripts read what the renderers write
(JSON and streams), and the next request they build reads back, on the model's side, as the same turns."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from toolwatch.demo import wire_anthropic, wire_gemini, wire_openai
from toolwatch.demo.conversation import read
from toolwatch.demo.dialects import TRANSCRIPTS, Outcome, Transcript, sse_events
from toolwatch.demo.script import Ids, Received, Reply, ToolCallSpec
from toolwatch.demo.tools import IN_TEXT_NOTE, STEP_LIMIT_NOTE

TOOLS = ("read_file", "run_tests")
RENDER = {"openai": wire_openai.render, "anthropic": wire_anthropic.render, "gemini": wire_gemini.render}
MODEL = {"openai": "glm-4.5", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
REPLY = Reply(
    text="Let me check.",
    tool_calls=(
        ToolCallSpec("read_file", '{"path": "src/app.py"}', id="call_1"),
        ToolCallSpec("run_tests", '{"path": "tests/test_app.py", "verbose": false}', id="call_2"),
    ),
)


def transcript(api: str) -> Transcript:
    return TRANSCRIPTS[api]("/mount", "key-1", "Be careful.", "[#1] Fix src/app.py", TOOLS)


def received(api: str, t: Transcript, stream: bool) -> Received:
    path, headers, body = t.request(MODEL[api], stream)
    return Received.capture("POST", path, headers, json.dumps(body).encode())


async def lines(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for line in b"".join(pieces).splitlines(keepends=True):
        yield line


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("api", ["openai", "anthropic", "gemini"])
async def test_a_turn_goes_round_the_wire(api: str, stream: bool) -> None:
    t = transcript(api)
    request = received(api, t, stream)
    assert request.path.startswith("/mount/")
    reply = REPLY
    if api == "gemini":  # Gemini 2.x sends no call ids
        reply = Reply(text=REPLY.text, tool_calls=tuple(ToolCallSpec(c.name, c.arguments) for c in REPLY.tool_calls))
    rendered = RENDER[api](reply, request, Ids())
    if stream:
        answer = await t.parse_stream(sse_events(lines(rendered.pieces)))
    else:
        answer = t.parse(json.loads(b"".join(rendered.pieces)))
    assert answer.text == "Let me check."
    assert [(c.name, json.loads(c.arguments)) for c in answer.calls] == [
        ("read_file", {"path": "src/app.py"}),
        ("run_tests", {"path": "tests/test_app.py", "verbose": False}),
    ]
    assert answer.finish_reason == {"openai": "tool_calls", "anthropic": "tool_use", "gemini": "STOP"}[api]

    t.add_answer(answer)
    ok, failed = answer.calls
    outcomes = [Outcome(ok, "def handle(): ...", False), Outcome(failed, "Error: no such file", True)]
    t.add_results(outcomes, STEP_LIMIT_NOTE)
    view = read(api, received(api, t, stream), MODEL[api])
    assert (view.system, view.task, view.tools, view.stream) == ("Be careful.", "[#1] Fix src/app.py", TOOLS, stream)
    [turn] = view.turns
    assert [c.name for c in turn.calls] == ["read_file", "run_tests"] and turn.text == "Let me check."
    assert [(r.name, r.failed) for r in turn.results] == [("read_file", False), ("run_tests", True)]
    assert turn.note == STEP_LIMIT_NOTE and turn.failed


@pytest.mark.parametrize("api", ["openai", "anthropic", "gemini"])
async def test_a_call_written_as_text_and_the_agents_note(api: str) -> None:
    t = transcript(api)
    text = '<tool_call>{"name": "read_file", "arguments": {"path": "src/app.py"}}</tool_call>'
    answer = t.parse(json.loads(b"".join(RENDER[api](Reply(text=text), received(api, t, False), Ids()).pieces)))
    assert answer.text == text and not answer.calls
    t.add_answer(answer)
    t.add_user(IN_TEXT_NOTE)
    [turn] = read(api, received(api, t, False), MODEL[api]).turns
    assert turn.text == text and turn.note == IN_TEXT_NOTE and turn.failed


async def test_streamed_broken_arguments_are_kept_as_written() -> None:
    """An Anthropic stream can carry argument text that is not JSON: the agent sees it as written, and the
    transcript sends the call back with an empty input (the API only takes objects)."""
    t = transcript("anthropic")
    cut = ToolCallSpec("read_file", '{"path": "src/ap', id="toolu_1")
    broken = Reply(tool_calls=(cut,), finish_reason="max_tokens")
    rendered = wire_anthropic.render(broken, received("anthropic", t, True), Ids())
    answer = await t.parse_stream(sse_events(lines(rendered.pieces)))
    assert [(c.name, c.arguments) for c in answer.calls] == [("read_file", '{"path": "src/ap')]
    assert answer.finish_reason == "max_tokens"
    t.add_answer(answer)
    assert t.messages[-1]["content"] == [{"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {}}]
