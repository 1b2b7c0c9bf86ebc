"""OpenTelemetry GenAI spans, decoded by an OTLP receiver on 127.0.0.1 (opentelemetry-proto): one CLIENT span
per LLM call with the GenAI attributes, one INTERNAL ``execute_tool`` span per tool call with its id and
error type, children of the agent's span under a ``traceparent``; a call never answered is exported as
``missing`` once its session counts as abandoned."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.fakes.upstreams import FakeUpstream
from tests.harness import TOOLS, ServeProcess
from tests.harness import make_settings as settings_for
from toolwatch.demo.script import Reply, ToolCallSpec, by_turn
from toolwatch.jobs.otel import SpanExport
from toolwatch.schemas.records import LlmCall, ToolCall
from toolwatch.store.sink import Batch

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class Receiver:
    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> Receiver:
        app = web.Application()

        async def traces(request: web.Request) -> web.Response:
            msg = ExportTraceServiceRequest()
            msg.ParseFromString(await request.read())
            for rs in msg.resource_spans:
                for ss in rs.scope_spans:
                    self.spans.extend(ss.spans)
            return web.Response(body=b"", content_type="application/x-protobuf")

        app.router.add_post("/v1/traces", traces)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.close()


def attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        out[kv.key] = (
            [v.string_value for v in value.array_value.values] if kind == "array_value" else getattr(value, kind)
        )
    return out


async def test_spans_for_calls_and_tool_calls_join_the_agents_trace(tmp_path: Path, receiver: Receiver) -> None:
    script = by_turn(
        Reply(tool_calls=(ToolCallSpec("lookup", '{"key": "a"}', "call_a"), ToolCallSpec("lookup", "{bad", "call_b"))),
        Reply(text="done"),
    )
    env = {"TOOLWATCH_OTEL_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    async with FakeUpstream(script) as fake:
        serve = await ServeProcess(tmp_path, fake.url, env=env).start()
        try:
            headers = {"traceparent": f"00-{TRACE}-{PARENT}-01", "Toolwatch-Session-Id": "s-otel"}
            async with openai.AsyncOpenAI(
                base_url=f"{serve.url}/openai/v1", api_key="sk-x", max_retries=0, default_headers=headers
            ) as client:
                messages: list[Any] = [{"role": "user", "content": "go"}]
                first = await client.chat.completions.create(model="gpt-test", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
                messages.append(first.choices[0].message.model_dump(exclude_none=True))
                messages.append({"role": "tool", "tool_call_id": "call_a", "content": "Error: no such key"})
                messages.append({"role": "tool", "tool_call_id": "call_b", "content": "ok"})
                await client.chat.completions.create(model="gpt-test", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
            for _ in range(150):
                if len(receiver.spans) >= 4:
                    break
                await asyncio.sleep(0.1)
        finally:
            assert await serve.stop() == 0
    llm = [s for s in receiver.spans if s.name == "chat gpt-test"]
    tools = {attrs(s)["gen_ai.tool.call.id"]: s for s in receiver.spans if s.name == "execute_tool lookup"}
    assert len(llm) == 2 and set(tools) == {"call_a", "call_b"}
    first_span = min(llm, key=lambda s: s.start_time_unix_nano)
    a = attrs(first_span)
    assert first_span.kind == 3  # SPAN_KIND_CLIENT
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-test" and a["gen_ai.response.model"] == "gpt-test"
    assert a["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert a["gen_ai.conversation.id"] == "h:s-otel" and a["server.address"] == "127.0.0.1"
    assert "error.type" not in a and a["toolwatch.malformed_count"] == 1
    for span in llm:  # children of the agent's span, in the agent's trace
        assert span.trace_id.hex() == TRACE and span.parent_span_id.hex() == PARENT
    ok, bad = tools["call_a"], tools["call_b"]
    assert ok.kind == 1 and attrs(ok)["gen_ai.operation.name"] == "execute_tool"  # SPAN_KIND_INTERNAL
    assert attrs(ok)["gen_ai.tool.type"] == "function" and attrs(ok)["error.type"] == "error_prefix"
    assert attrs(bad)["error.type"] == "malformed" and attrs(bad)["toolwatch.malformed_kind"] == "invalid_json"
    for span in (ok, bad):
        assert span.parent_span_id == first_span.span_id and span.trace_id.hex() == TRACE
        assert span.start_time_unix_nano == first_span.end_time_unix_nano  # when the emitting answer ended
        assert span.end_time_unix_nano > span.start_time_unix_nano  # when the request with its result arrived
        assert "gen_ai.tool.call.arguments" not in attrs(span)  # opt-in only


def test_a_tool_call_never_answered_is_exported_as_missing(tmp_path: Path, store_path: Path) -> None:
    exporter = InMemorySpanExporter()
    spans = SpanExport(settings_for(store_path, tmp_path, otel_tool_content=True), exporter, abandon_after=600)
    ts = datetime.now(UTC) - timedelta(minutes=30)
    cid = uuid.uuid4()
    call = LlmCall(
        call_id=cid, ts=ts, upstream="openai", api="openai", endpoint="chat_completions", method="POST",
        path="/v1/chat/completions", model="m", latency_ms=1500, conv_key="k1", tool_call_count=1,
    )  # fmt: skip
    tool = ToolCall(
        tool_call_uid=uuid.uuid4(), call_id=cid, ts=ts, upstream="openai", model="m", call_index=0,
        tool_call_id="call_z", name="search", raw_arguments='{"q": "x"}',
    )  # fmt: skip
    batch = Batch()
    batch.add(call, [tool], [], None)
    spans.observe(batch)
    assert spans.expire(now=(ts + timedelta(minutes=5)).timestamp()) == 0  # not abandoned yet
    assert spans.expire() == 1
    spans.flush()
    [llm, missing] = sorted(exporter.get_finished_spans(), key=lambda s: s.name)
    assert llm.name == "chat m" and llm.context.trace_id == missing.context.trace_id  # the session's trace
    assert missing.name == "execute_tool search" and missing.attributes["error.type"] == "missing"
    assert missing.attributes["gen_ai.tool.call.arguments"] == '{"q": "x"}'  # opted in
    assert missing.parent is not None and missing.parent.span_id == llm.context.span_id
    spans.shutdown()
