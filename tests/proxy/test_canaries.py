"""No API key is stored or logged, in any form an agent sends it: canary keys go through the proxy in every
header and query parameter providers use; then every row of every table, the log output (the access log
as ``toolwatch serve`` writes it, at DEBUG for all loggers) and the proxy's own error bodies are searched."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.upstreams import FakeUpstream
from tests.harness import Harness
from tests.proxy.test_providers_e2e import settings_for
from toolwatch.proxy.app import AccessLogger, make_app

CANARY = f"canary{uuid.uuid4().hex[:10]}"


def key(form: str) -> str:
    return f"{CANARY}-{form}-secret"


# (upstream mount, path, headers, query) for every way a key travels
FORMS: list[tuple[str, str, dict[str, str], str]] = [
    ("openai", "/v1/chat/completions", {"Authorization": f"Bearer {key('bearer')}"}, ""),
    ("openai", "/v1/responses", {"Authorization": f"Bearer {key('responses')}", "OpenAI-Organization": key("org")}, ""),
    ("anthropic", "/v1/messages", {"x-api-key": key("x-api-key"), "anthropic-version": "2023-06-01"}, ""),
    ("az", "/openai/deployments/dep/chat/completions", {"api-key": key("api-key")}, "api-version=2024-10-21"),
    ("gemini", "/v1beta/models/gemini-2.5-flash:generateContent", {"x-goog-api-key": key("goog")}, ""),
    ("gemini", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", {}, f"alt=sse&key={key('query')}"),
    ("gemini", "/v1beta/models", {}, f"key={key('query-models')}&pageSize=5"),
    ("glm", "/chat/completions", {"Authorization": key("raw-authorization")}, f"api_key={key('query-api-key')}"),
]
BODIES = {
    "/v1/chat/completions": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/responses": {"model": "m", "input": "hi"},
    "/v1/messages": {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    "/chat/completions": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
}


class ServedHarness(Harness):
    """The in-process harness with the access logger ``toolwatch serve`` uses."""

    async def start(self) -> ServedHarness:
        self.app = make_app(self.settings)
        self.runner = web.AppRunner(
            self.app,
            handler_cancellation=True,
            shutdown_timeout=2.0,
            access_log_class=AccessLogger,
            access_log=logging.getLogger("toolwatch.access"),
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        self.start_recorder()
        return self


async def served(store_path: Path, spool: Path, upstream: str) -> ServedHarness:
    return await ServedHarness(settings_for(store_path, spool, upstream)).start()


async def send_all(url: str) -> list[tuple[int, bytes]]:
    answers = []
    async with aiohttp.ClientSession() as session:
        for mount, path, headers, query in FORMS:
            target = f"{url}/{mount}{path}" + (f"?{query}" if query else "")
            body = BODIES.get(path, {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
            method = "GET" if path.endswith("/models") else "POST"
            async with session.request(method, target, headers=headers, json=None if method == "GET" else body) as r:
                answers.append((r.status, await r.read()))
    return answers


def every_value(h: Harness) -> dict[str, list[str]]:
    """Every value of every row of every table in the test database, as text (aggregate states of the
    rollups finalized first; views hold no rows of their own)."""
    columns = h.query(
        "SELECT table, name, type FROM system.columns WHERE database = currentDatabase() AND table IN"
        " (SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View')"
    )
    exprs: dict[str, list[str]] = {}
    for table, name, kind in columns:  # identifiers come from system tables, not from input
        value = f"finalizeAggregation(`{name}`)" if kind.startswith("AggregateFunction") else f"`{name}`"
        exprs.setdefault(table, []).append(f"toString({value})")
    dump: dict[str, list[str]] = {}
    for table, values in exprs.items():
        rows = h.query(f"SELECT {', '.join(values)} FROM `{table}`")
        dump[table] = [str(v) for row in rows for v in row]
    return dump


def server_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What toolwatch and its aiohttp server logged (the test's own HTTP clients are left out)."""
    return [
        r for r in caplog.records if r.name.startswith(("toolwatch", "aiohttp.access", "aiohttp.server", "aiohttp.web"))
    ]


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture
async def proxy(store_path: Path, tmp_path: Path, fake: FakeUpstream) -> AsyncIterator[ServedHarness]:
    h = await served(store_path, tmp_path / "spool", fake.url)
    try:
        yield h
    finally:
        await h.close()


async def test_no_key_in_the_store_or_the_logs(
    proxy: ServedHarness, fake: FakeUpstream, debug_logs: pytest.LogCaptureFixture
) -> None:
    answers = await send_all(proxy.url)
    assert [status for status, _ in answers] == [200] * len(FORMS)
    # the keys did reach the upstream: forwarded, not dropped
    sent = [(dict(r.headers), r.path) for r in fake.received]
    assert sum(CANARY in " ".join(h.values()) + p for h, p in sent) == len(FORMS)
    await proxy.flush(expect=len(FORMS))
    dump = every_value(proxy)
    # the rows searched are there: one call per request, with tool-less bodies stored for parsed endpoints
    calls = proxy.rows("SELECT upstream, path, endpoint FROM llm_calls ORDER BY ts")
    assert sorted((c["upstream"], c["path"]) for c in calls) == sorted((m, p) for m, p, _, _ in FORMS)
    assert len(proxy.rows("SELECT call_id FROM bodies")) == sum(c["endpoint"] != "other" for c in calls)
    assert {"llm_calls", "bodies", "tool_calls", "tool_results"} <= set(dump)
    leaks = {table: [v for v in values if CANARY in v] for table, values in dump.items()}
    assert not any(leaks.values()), leaks
    logs = server_logs(debug_logs)
    access = [r for r in logs if r.name == "toolwatch.access"]
    assert len(access) == len(FORMS) and any("/models" in r.getMessage() for r in access)
    assert not [r.getMessage() for r in logs if CANARY in r.getMessage()]
    assert CANARY not in debug_logs.text


async def test_no_key_in_error_bodies_or_logs_when_the_upstream_is_unreachable(
    store_path: Path, tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    h = await served(store_path, tmp_path / "spool", "http://127.0.0.1:9")
    try:
        answers = await send_all(h.url)
        async with aiohttp.ClientSession() as session:
            unknown = f"{h.url}/nowhere/v1/chat/completions?key={key('unknown-mount')}"
            async with session.post(unknown, headers={"Authorization": f"Bearer {key('unknown')}"}) as r:
                answers.append((r.status, await r.read()))
        assert [status for status, _ in answers] == [502] * len(FORMS) + [404]
        assert not [body for _, body in answers if CANARY.encode() in body]
        await h.flush(expect=len(FORMS))
        errors: list[Any] = [r["error"] for r in h.rows("SELECT error FROM llm_calls")]
        assert len(errors) == len(FORMS) and all(e and "cannot reach the upstream" in e for e in errors)
        leaks = {table: [v for v in values if CANARY in v] for table, values in every_value(h).items()}
        assert not any(leaks.values()), leaks
    finally:
        await h.close()
    assert [r for r in server_logs(debug_logs) if r.name == "toolwatch.access"]
    assert CANARY not in debug_logs.text


# -- secrets inside bodies, tool arguments and tool results ----------------------------------------

UPPER = CANARY.upper().replace("-", "")
SECRETS = {
    "openai": f"sk-proj-{CANARY}abcdefghijklmnop",
    "anthropic": f"sk-ant-api03-{CANARY}abcdefgh",
    "google": "AIza" + (CANARY + "x" * 35)[:35],
    "aws": "AKIA" + (UPPER + "Q" * 16)[:16],
    "jwt": f"eyJ{CANARY}abc.eyJ{CANARY}def.{CANARY}sig",
    "pem": f"-----BEGIN RSA PRIVATE KEY-----\nMIIE{CANARY}\n-----END RSA PRIVATE KEY-----",
    "bearer": f"Bearer {CANARY}0123456789abcdef",
}


async def test_secrets_in_bodies_and_tool_arguments_reach_no_table_and_no_log(
    proxy: ServedHarness, fake: FakeUpstream, debug_logs: pytest.LogCaptureFixture
) -> None:
    import json

    from tests.fakes.upstreams import Reply, ToolCallSpec

    arguments = json.dumps({"token": SECRETS["anthropic"], "key": SECRETS["pem"], "aws": SECRETS["aws"]})
    fake.push(Reply(tool_calls=(ToolCallSpec("deploy", arguments),)), Reply(text=f"done, {SECRETS['jwt']}"))
    tools = [{"type": "function", "function": {"name": "deploy", "parameters": {"type": "object"}}}]
    messages: list[Any] = [{"role": "user", "content": f"use {SECRETS['openai']} and {SECRETS['google']}"}]
    async with aiohttp.ClientSession() as s:
        url = f"{proxy.url}/openai/v1/chat/completions"
        async with s.post(url, json={"model": "m", "messages": messages, "tools": tools}) as r:
            first = await r.json()
        call = first["choices"][0]["message"]["tool_calls"][0]
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": f"Error: {SECRETS['bearer']} expired"},
        ]
        async with s.post(url, json={"model": "m", "messages": messages, "tools": tools}) as r:
            assert r.status == 200
    await proxy.flush(expect=2)
    # the figures are the same as without redaction: the result is an error, the arguments are valid
    [(kind, arguments_stored)] = proxy.query("SELECT malformed_kind, arguments FROM tool_calls")
    assert kind == "" and "[REDACTED:" in arguments_stored and json.loads(arguments_stored)
    [(rule, content)] = proxy.query("SELECT error_rule, content FROM tool_results")
    assert rule == "error_prefix" and "[REDACTED:bearer_token]" in content
    dump = every_value(proxy)
    assert len(proxy.query("SELECT call_id FROM bodies")) == 2
    leaks = {table: [v[:200] for v in values if CANARY in v or UPPER in v] for table, values in dump.items()}
    assert not any(leaks.values()), leaks
    assert CANARY not in debug_logs.text and UPPER not in debug_logs.text


def test_every_default_pattern_is_exercised() -> None:
    from toolwatch.recorder.redact import DEFAULT_PATTERNS, Redactor

    redactor = Redactor()
    names = set()
    for secret in [*SECRETS.values(), "ghp_" + "a" * 36, "xoxb-1234567890-abc", "aws_secret_access_key = " + "A" * 40]:
        redacted = redactor.text(f"x {secret} y")
        assert secret not in redacted and redacted.startswith("x [REDACTED:")
        names.add(redacted.split("[REDACTED:")[1].split("]")[0])
    assert names == set(DEFAULT_PATTERNS)
