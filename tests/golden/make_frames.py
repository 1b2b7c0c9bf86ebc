"""Regenerate ``tests/fixtures/golden/frames.twf``: a fixed set of spool frames for the golden test.

Run once, by hand, from the repository root: ``python -m tests.golden.make_frames``. It drives an
in-process toolwatch (recorder off) against the fake upstream and keeps the spool segments it wrote. The
frames cover every provider, streamed and not, in-text calls, resent results, malformed calls of each
kind, an upstream failure retried, a gzip body, and sessions with and without headers.

The frames file is committed; the golden test never regenerates it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.upstreams import FakeUpstream
from tests.harness import Harness
from toolwatch.demo.script import Reply, ToolCallSpec, by_turn
from toolwatch.schemas.settings import load_settings

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "golden" / "frames.twf"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CHAT_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}]
ANTHROPIC_TOOLS = [{"name": "get_weather", "input_schema": SCHEMA}]
RESPONSES_TOOLS = [{"type": "function", "name": "get_weather", "parameters": SCHEMA}]
GEMINI_TOOLS = [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": SCHEMA}]}]


def weather(args: str = '{"city": "Paris"}', id: str | None = None) -> ToolCallSpec:
    return ToolCallSpec("get_weather", args, id)


async def post(s: aiohttp.ClientSession, url: str, body: Any, **headers: str) -> Any:
    async with s.post(url, json=body, headers=headers) as r:
        raw = await r.read()
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            return raw
        try:
            return json.loads(raw)
        except ValueError:
            return raw


def sse_events(raw: bytes) -> list[Any]:
    out = []
    for line in raw.decode().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


async def openai_chat(s: aiohttp.ClientSession, base: str, fake: FakeUpstream, stream: bool, **hdr: str) -> None:
    """Three turns: a valid call, then invalid JSON arguments after the result, then a final answer."""
    fake.script(
        by_turn(
            Reply(tool_calls=(weather(),)),
            Reply(tool_calls=(weather('{"city": "Par'),)),
            Reply(text="It is sunny in Paris."),
        )
    )
    system = f"You are a weather agent ({'streamed' if stream else 'plain'})."
    messages: list[Any] = [{"role": "system", "content": system}, {"role": "user", "content": "Weather in Paris?"}]
    body: dict[str, Any] = {"model": "gpt-4o", "messages": messages, "tools": CHAT_TOOLS, "stream": stream}
    for turn in range(3):
        reply = await post(s, f"{base}/openai/v1/chat/completions", body, **hdr)
        if turn == 2:
            break
        if stream:
            calls: dict[int, dict[str, Any]] = {}
            for ev in sse_events(reply):
                for tc in ev["choices"][0]["delta"].get("tool_calls") or [] if ev.get("choices") else []:
                    c = calls.setdefault(tc["index"], {"id": tc.get("id"), "name": "", "arguments": ""})
                    c["name"] += tc.get("function", {}).get("name") or ""
                    c["arguments"] += tc.get("function", {}).get("arguments") or ""
            tool_calls = [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in calls.values()
            ]
        else:
            tool_calls = reply["choices"][0]["message"]["tool_calls"]
        messages.append({"role": "assistant", "content": None, "tool_calls": tool_calls})
        for tc in tool_calls:
            content = "sunny, 21C" if turn == 0 else "Error: city is missing"
            messages.append({"role": "tool", "tool_call_id": tc["id"], "content": content})


async def anthropic(s: aiohttp.ClientSession, base: str, fake: FakeUpstream, stream: bool, **hdr: str) -> None:
    """Unknown tool, then a schema violation answered with is_error, then a final answer."""
    fake.script(
        by_turn(
            Reply(tool_calls=(ToolCallSpec("get_wether", '{"city": "Oslo"}'),)),
            Reply(tool_calls=(weather('{"town": "Oslo"}'),)),
            Reply(text="Cold in Oslo."),
        )
    )
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": f"Weather agent {stream}",
        "messages": messages,
        "tools": ANTHROPIC_TOOLS,
        "stream": stream,
    }
    for turn in range(3):
        reply = await post(s, f"{base}/anthropic/v1/messages", body, **hdr)
        if turn == 2:
            break
        if stream:
            blocks: dict[int, dict[str, Any]] = {}
            for ev in sse_events(reply):
                if ev.get("type") == "content_block_start" and ev["content_block"]["type"] == "tool_use":
                    blocks[ev["index"]] = {**ev["content_block"], "partial": ""}
                elif ev.get("type") == "content_block_delta" and ev["delta"]["type"] == "input_json_delta":
                    blocks[ev["index"]]["partial"] += ev["delta"]["partial_json"]
            content = [
                {"type": "tool_use", "id": b["id"], "name": b["name"], "input": json.loads(b["partial"] or "{}")}
                for b in blocks.values()
            ]
        else:
            content = [b for b in reply["content"] if b["type"] == "tool_use"]
        messages.append({"role": "assistant", "content": content})
        results = [
            {"type": "tool_result", "tool_use_id": b["id"], "content": "unknown tool", "is_error": True}
            for b in content
        ]
        messages.append({"role": "user", "content": results})


async def responses(s: aiohttp.ClientSession, base: str, fake: FakeUpstream, stream: bool) -> None:
    """A call, then its output sent with previous_response_id, then a full-input follow-up."""
    fake.script([Reply(tool_calls=(weather('{"city": "Rome"}'),)), Reply(text="Warm in Rome."), Reply(text="Yes.")])
    body: dict[str, Any] = {
        "model": "gpt-4.1",
        "instructions": f"Responses agent {stream}",
        "input": "Weather in Rome?",
        "tools": RESPONSES_TOOLS,
        "stream": stream,
    }
    first = await post(s, f"{base}/openai/v1/responses", body)
    if stream:
        final = [e for e in sse_events(first) if e.get("type") == "response.completed"][0]["response"]
    else:
        final = first
    call = [o for o in final["output"] if o["type"] == "function_call"][0]
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "warm, 25"}
    second = {**body, "stream": False, "previous_response_id": final["id"], "input": [output]}
    await post(s, f"{base}/openai/v1/responses", second)
    full = {
        **body,
        "stream": False,
        "input": [{"role": "user", "content": "Weather in Rome?"}, call, output, {"role": "user", "content": "Sure?"}],
    }
    await post(s, f"{base}/openai/v1/responses", full)


async def gemini(s: aiohttp.ClientSession, base: str, fake: FakeUpstream, mode: str) -> None:
    """Two parallel calls without ids, their function responses, then a final answer."""
    fake.script(
        by_turn(Reply(tool_calls=(weather('{"city": "Bern"}'), weather('{"city": "Basel"}'))), Reply(text="Mild."))
    )
    path = {
        "json": "models/gemini-2.5-flash:generateContent",
        "sse": "models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        "array": "models/gemini-2.5-flash:streamGenerateContent",
    }[mode]
    contents: list[Any] = [{"role": "user", "parts": [{"text": "Weather in Bern and Basel?"}]}]
    body = {"contents": contents, "tools": GEMINI_TOOLS, "systemInstruction": {"parts": [{"text": f"Gemini {mode}"}]}}
    url = f"{base}/gemini/v1beta/{path}"
    first = await post(s, url, body, **{"x-goog-api-key": "g-test"})
    chunks = sse_events(first) if mode == "sse" else first if isinstance(first, list) else [first]
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"] if "functionCall" in p]
    contents.append({"role": "model", "parts": parts})
    contents.append(
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"output": f"mild {i}"}}}
                for i in range(len(parts))
            ],
        }
    )
    await post(s, url, body, **{"x-goog-api-key": "g-test"})


async def azure(s: aiohttp.ClientSession, base: str, fake: FakeUpstream) -> None:
    fake.script([Reply(text="Azure says hi.", model="gpt-4o-2024-11-20")])
    body = {"messages": [{"role": "user", "content": "hi azure"}], "tools": CHAT_TOOLS}
    await post(s, f"{base}/az/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21", body)


async def in_text(s: aiohttp.ClientSession, base: str, fake: FakeUpstream) -> None:
    """An open model that writes its call into the text, through a named upstream with a path prefix."""
    text = 'Let me check.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Lima"}}</tool_call>'
    fake.script(
        [Reply(text=text, model="glm-4.5"), Reply(text='```json\n{"name": "get_weather", "arguments": {}}\n```')]
    )
    body = {"model": "glm-4.5", "messages": [{"role": "user", "content": "Lima?"}], "tools": CHAT_TOOLS}
    await post(s, f"{base}/glm/chat/completions", body)
    body2 = {"model": "glm-4.5", "messages": [{"role": "user", "content": "Lima again?"}], "tools": CHAT_TOOLS}
    await post(s, f"{base}/glm/chat/completions", body2)


async def truncated_and_retry(s: aiohttp.ClientSession, base: str, fake: FakeUpstream) -> None:
    """A call cut by the token limit; a first turn that failed with 500 and was retried."""
    fake.script(
        [
            Reply(tool_calls=(weather('{"city": "Ki'),), finish_reason="length"),
            Reply(status=500, error_type="server_error", error_message="boom"),
            Reply(tool_calls=(weather('{"city": "Kyiv"}'),)),
        ]
    )
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Kyiv, briefly"}], "tools": CHAT_TOOLS}
    await post(s, f"{base}/openai/v1/chat/completions", body)
    retry = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Retry me"}], "tools": CHAT_TOOLS}
    await post(s, f"{base}/openai/v1/chat/completions", retry)
    await post(s, f"{base}/openai/v1/chat/completions", retry)


async def rewriting_agent(s: aiohttp.ClientSession, base: str, fake: FakeUpstream) -> None:
    """An agent that rewrites its system prompt every turn: linked through the tool-call ids it resends."""
    fake.script(
        by_turn(
            Reply(tool_calls=(weather('{"city": "Quito"}'),)),
            Reply(tool_calls=(weather('{"city": "Lima"}'),)),
            Reply(text="done"),
        )
    )
    messages: list[Any] = [{"role": "user", "content": "Plan a trip"}]
    for turn in range(3):
        system = {"role": "system", "content": f"Step {turn}: you are a travel agent."}
        reply = await post(
            s,
            f"{base}/openai/v1/chat/completions",
            {"model": "gpt-4o", "messages": [system, *messages], "tools": CHAT_TOOLS},
        )
        if turn == 2:
            break
        tool_calls = reply["choices"][0]["message"]["tool_calls"]
        messages.append({"role": "assistant", "content": None, "tool_calls": tool_calls})
        messages += [{"role": "tool", "tool_call_id": tc["id"], "content": "ok"} for tc in tool_calls]


async def gzip_and_other(s: aiohttp.ClientSession, base: str, fake: FakeUpstream) -> None:
    payload = {
        "id": "chatcmpl-gz",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "zipped"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1},
    }
    fake.script([Reply(raw=gzip.compress(json.dumps(payload).encode()), headers={"content-encoding": "gzip"})])
    await post(
        s, f"{base}/openai/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "gz"}]}
    )
    async with s.get(f"{base}/openai/v1/models") as r:
        await r.read()


async def main() -> None:
    async with FakeUpstream() as fake:
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                "TOOLWATCH_UPSTREAM_OPENAI_URL": fake.url,
                "TOOLWATCH_UPSTREAM_ANTHROPIC_URL": fake.url,
                "TOOLWATCH_UPSTREAM_GEMINI_URL": fake.url,
                "TOOLWATCH_UPSTREAM_AZ_URL": fake.url,
                "TOOLWATCH_UPSTREAM_AZ_API": "azure",
                "TOOLWATCH_UPSTREAM_GLM_URL": fake.url + "/api/paas/v4",
                "TOOLWATCH_UPSTREAM_GLM_API": "openai",
            }
            settings = load_settings(
                None,
                environ=env,
                overrides={
                    "store": f"chdb://{tmp}/store",
                    "database": f"g_{uuid.uuid4().hex[:8]}",
                    "spool": f"{tmp}/spool",
                    "segment_max_age": 3600,
                    "segment_bytes": 1 << 30,
                },
            )
            h = Harness(settings, start_recorder=False)
            await h.start()
            async with aiohttp.ClientSession(auto_decompress=False) as s:
                base = h.url
                await openai_chat(s, base, fake, False)
                await openai_chat(
                    s,
                    base,
                    fake,
                    True,
                    **{
                        "Toolwatch-Session-Id": "golden-1",
                        "Toolwatch-Agent": "planner",
                        "Toolwatch-User-Id": "u-7",
                        "Toolwatch-Property-Env": "ci",
                    },
                )
                await anthropic(s, base, fake, False)
                await anthropic(s, base, fake, True, **{"Helicone-Session-Id": "golden-2"})
                await responses(s, base, fake, False)
                await responses(s, base, fake, True)
                for mode in ("json", "sse", "array"):
                    await gemini(s, base, fake, mode)
                await azure(s, base, fake)
                await in_text(s, base, fake)
                await truncated_and_retry(s, base, fake)
                await rewriting_agent(s, base, fake)
                await gzip_and_other(s, base, fake)
            await h.runner.cleanup()  # seals the segment
            h.runner = None
            data = b"".join(p.read_bytes() for p in sorted(Path(tmp, "spool").glob("*.seg")))
            await h.close()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(data)
    print(f"wrote {len(data)} bytes to {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
