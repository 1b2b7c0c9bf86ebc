"""The dashboard in chromium against a live ``toolwatch serve``, fed by the official OpenAI SDK.

One server and one browser for the module: agent sessions with tool calls and results (a failing result,
a malformed call, an HTTP error, an agent that moves to another model, untrusted text), a fixed window
(``until`` a minute ahead) shared by the pages and the CLI, then: the overview table equals
``toolwatch report --json`` field by field, a timeline opens from the sessions list, untrusted text stays
text, the pages refresh live and say so when the API fails, and nothing reaches the console. Screenshots go
to ``$TOOLWATCH_SCREENSHOTS`` (else a temporary folder).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page

from tests.dashboard.browsing import Console, needs_chromium, shoot, shots_dir, wait_for_api
from tests.fakes.upstreams import FakeUpstream, Received, Reply, ToolCallSpec, by_turn
from tests.harness import ServeProcess, run_cli

pytestmark = [needs_chromium, pytest.mark.asyncio(loop_scope="module")]

# the report fields the overview table shows, each compared with the CLI's value
TABLE_FIELDS = (
    "model",
    "upstream",
    "llm_calls",
    "tool_calls",
    "malformed_rate",
    "malformed_by_kind",
    "tool_error_rate",
    "sessions",
    "session_success_rate",
    "recovery_rate",
    "cascade_rate",
    "loop_sessions",
    "http_error_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "cost_usd",
    "cost_per_successful_session_usd",
)

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        },
    }
    for name in ("lookup", "fetch_page")
]
XSS = '<img src=x onerror="document.body.dataset.pwned=1">'
RESULTS = {
    "lookup": '{"value": 42, "note": "' + XSS.replace('"', "'") + '"}',
    "fetch_page": "Error: connection refused by example.com",
}

LOOKUP = Reply(tool_calls=(ToolCallSpec("lookup", '{"q": "weather"}'),))
FETCH = Reply(tool_calls=(ToolCallSpec("fetch_page", '{"q": "https://example.com"}'),))
FETCH_CUT = Reply(tool_calls=(ToolCallSpec("fetch_page", '{"q": "https://example.com'),))  # malformed
ANSWER = Reply(text="Here is what I found.")
# Each model drives the agent loop its own way: gpt-4o meets a tool error and recovers, local-llm keeps
# cutting its arguments short until the agent gives up (a cascade), gpt-4o-mini is quick.
SCRIPTS = {
    "gpt-4o": by_turn(LOOKUP, FETCH, LOOKUP, ANSWER),
    "local-llm": by_turn(LOOKUP, FETCH_CUT, FETCH_CUT, FETCH_CUT),
    "gpt-4o-mini": by_turn(LOOKUP, ANSWER),
}
MAX_TURNS = 5


def script(received: Received) -> Reply:
    if "s-http-error" in json.dumps(received.messages[:1]):  # toolwatch strips its headers before forwarding
        return Reply(status=500, error_message="upstream fell over")
    return SCRIPTS.get(received.model or "", SCRIPTS["gpt-4o-mini"])(received)


@dataclass
class World:
    serve: ServeProcess
    since: str
    until: str
    report: list[dict[str, Any]] = field(default_factory=list)

    def page_url(self, page: str, **extra: str) -> str:
        query = urllib.parse.urlencode({"since": self.since, "until": self.until, **extra})
        return f"{self.serve.url}/_toolwatch/{page}?{query}"


async def agent_session(client: openai.AsyncOpenAI, model: str, session: str, agent: str) -> int:
    """Run one agent loop through the proxy; the number of LLM calls it made."""
    headers = {
        "Toolwatch-Session-Id": session,
        "Toolwatch-Agent": agent,
        "Toolwatch-User-Id": "user-7",
        "Toolwatch-Property-Env": "<b>staging</b>",
    }
    messages: list[Any] = [{"role": "user", "content": f"task for {session}: <script>alert(1)</script>"}]
    for turn in range(1, MAX_TURNS + 1):
        try:
            r = await client.chat.completions.create(model=model, messages=messages, tools=TOOLS, extra_headers=headers)
        except openai.InternalServerError:
            return turn
        message = r.choices[0].message
        if not message.tool_calls:
            return turn
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            name = call.function.name  # type: ignore[union-attr]
            messages.append({"role": "tool", "tool_call_id": call.id, "content": RESULTS[name]})
    return MAX_TURNS


async def traffic(url: str) -> int:
    """Two waves about one chart bucket (10 s) apart, so the charts have lines; `planner` moves from gpt-4o
    to gpt-4o-mini in the second. Returns the number of LLM calls made."""
    waves = [
        [("gpt-4o", "s-gpt-1", "planner"), ("local-llm", "s-local-1", "coder"), ("gpt-4o", "s-http-error", "planner")],
        [("gpt-4o", "s-gpt-2", "planner"), ("local-llm", "s-local-2", "coder")],
    ]
    calls = 0
    async with openai.AsyncOpenAI(base_url=f"{url}/openai/v1", api_key="sk-test", max_retries=0) as client:
        for i, wave in enumerate(waves):
            if i:
                await asyncio.sleep(9)
            calls += sum(await asyncio.gather(*(agent_session(client, *s) for s in wave)))
        # after the others, so that it is planner's first call on a new model
        calls += await agent_session(client, "gpt-4o-mini", "s-mini-1", "planner")
    return calls


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    data = tmp_path_factory.mktemp("dashboard")
    async with FakeUpstream(script) as fake:
        # alerts evaluated every second: the evaluator is what finds the model switches marked on the charts
        serve = await ServeProcess(data, fake.url, env={"TOOLWATCH_ALERT_INTERVAL": "1"}).start()
        try:
            start = dt.datetime.now(dt.UTC).replace(microsecond=0)
            calls = await traffic(serve.url)
            await serve.wait_for(lambda s: s.get("calls_written", 0) >= calls and not s.get("pending_batch_rows"))
            since = (start - dt.timedelta(seconds=30)).isoformat()
            until = (dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=1)).isoformat()
            world = World(serve, since, until)
            window = urllib.parse.urlencode({"since": since, "until": until})
            await wait_for_api(serve, f"/_toolwatch/api/timeseries?{window}", lambda ts: ts["switches"])
            rc, out, err = await run_cli(
                "report", "--json", "--since", since, "--until", until, "--store", serve.store, cwd=data
            )
            assert rc == 0, f"toolwatch report failed ({rc}): {err}{out}"
            world.report = json.loads(out)
            yield world
        finally:
            await serve.stop()


async def read_report_table(page: Page) -> dict[str, dict[str, Any]]:
    rows = await page.eval_on_selector_all(
        "#report tbody tr",
        """trs => trs.map(tr => [
            tr.dataset.model,
            Object.fromEntries([...tr.querySelectorAll('[data-field]')].map(c => [c.dataset.field, c.dataset.value])),
        ])""",
    )
    return {model: {k: json.loads(v) for k, v in cells.items()} for model, cells in rows}


async def test_overview_table_equals_cli_report(world: World, page: Page) -> None:
    by_model = {r["model"]: r for r in world.report}
    assert set(by_model) == {"gpt-4o", "gpt-4o-mini", "local-llm"}
    # the traffic has what the table must show: malformed calls, tool errors, an HTTP error, a missing price
    assert by_model["local-llm"]["malformed_rate"] and by_model["gpt-4o"]["tool_error_rate"]
    assert by_model["gpt-4o"]["http_error_rate"] and by_model["gpt-4o"]["cost_usd"]
    assert by_model["local-llm"]["cost_usd"] is None

    await page.goto(world.page_url(""))
    await page.wait_for_selector("#report[data-loaded]")
    table = await read_report_table(page)
    assert set(table) == set(by_model)
    for model, cells in table.items():
        assert set(TABLE_FIELDS) <= set(cells), model
        for name, value in cells.items():
            assert value == by_model[model][name], (model, name)
    # formatted text: a rate as a percentage, an unknown cost as a dash (never a guess)
    cost = page.locator('#report tr[data-model="local-llm"] [data-field="cost_usd"]')
    assert (await cost.inner_text()).strip() == "–"
    rate = await page.locator('#report tr[data-model="local-llm"] [data-field="malformed_rate"]').inner_text()
    assert rate.strip().endswith("%")
    footnote = await page.locator("#prices").inner_text()
    assert "as of" in footnote
    # the window carries over to the other pages
    href = await page.locator('nav a[data-page="sessions"]').get_attribute("href")
    assert href == "sessions?" + urllib.parse.urlencode({"since": world.since, "until": world.until})
    # the charts drew, and planner's move to another model is marked on each, and listed under them
    await page.wait_for_selector("#charts[data-loaded]")
    assert await page.locator("#charts .uplot").count() == 6
    marks = page.locator('.switch-mark[data-agent="planner"]')
    assert await marks.count() == 6
    title = await marks.first.get_attribute("title") or ""
    assert title == await marks.first.get_attribute("aria-label")
    assert title.startswith("planner: gpt-4o → gpt-4o-mini (full, 100%) · ")
    listed = await page.locator('#switches li[data-agent="planner"]').inner_text()
    assert "planner: gpt-4o → gpt-4o-mini (full, 100%)" in listed


async def test_timeline_opens_from_sessions_list(world: World, page: Page) -> None:
    await page.goto(world.page_url("sessions"))
    await page.wait_for_selector("#sessions[data-loaded]")
    sessions = await page.eval_on_selector_all("#sessions tbody tr", "trs => trs.map(tr => tr.dataset.session)")
    assert {"h:s-gpt-1", "h:s-gpt-2", "h:s-local-1", "h:s-local-2", "h:s-mini-1", "h:s-http-error"} <= set(sessions)
    assert "env=<b>staging</b>" in await page.locator("#sessions tbody").inner_text()
    assert await page.locator("#sessions tbody b").count() == 0
    await page.locator('#sessions tr[data-session="h:s-gpt-1"] a.session-link').click()
    await page.wait_for_selector("#timeline[data-loaded]")
    assert "session=h%3As-gpt-1" in page.url and "until=" in page.url
    steps = page.locator("#timeline .step")
    assert await steps.count() == 4
    calls = await page.eval_on_selector_all(
        "#timeline .tool-call", "els => els.map(e => [e.dataset.name, e.dataset.outcome])"
    )
    assert calls == [["lookup", "ok"], ["fetch_page", "error"], ["lookup", "ok"]]
    assert await page.locator("#timeline .step.first-failure").count() == 1
    # untrusted text from the tool result is shown as text, not markup
    result = await page.locator('#timeline .tool-call[data-name="lookup"] pre.result').first.inner_text()
    assert "<img src=x" in result
    assert await page.locator("#timeline img").count() == 0


async def test_call_page_shows_bodies_and_parsed_calls(world: World, page: Page) -> None:
    await page.goto(world.page_url("session", session="s-gpt-1"))
    await page.wait_for_selector("#timeline[data-loaded]")
    await page.locator("#timeline .step").nth(1).get_by_role("link", name="call →").click()
    await page.wait_for_selector("#call[data-loaded]")
    bodies = await page.locator("pre.body").all_inner_texts()
    assert len(bodies) == 2
    assert '"model": "gpt-4o"' in bodies[0]  # the request, pretty-printed
    assert "fetch_page" in bodies[1]
    assert await page.locator('#call .tool-call[data-name="fetch_page"]').count() == 1
    assert "<script>alert(1)</script>" in bodies[0] and await page.locator("#call script").count() == 0
    # a streamed body (server-sent events) is shown event by event, each event's JSON indented
    sse = 'event: delta\ndata: {"a":1,"b":[2]}\n\ndata: [DONE]\n\n'
    pretty = await page.evaluate(
        "async body => (await import(new URL('static/call.js', location.href))).prettyBody(body)", sse
    )
    assert pretty == {
        "kind": "server-sent events",
        "text": 'event: delta\ndata: {\n  "a": 1,\n  "b": [\n    2\n  ]\n}\n\ndata: [DONE]',
    }


async def test_screenshots(world: World, page: Page, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = shots_dir(tmp_path_factory)
    await page.goto(world.page_url(""))
    await page.wait_for_selector("#charts[data-loaded]")
    await shoot(page, folder, "overview-desktop-light")
    await page.emulate_media(color_scheme="dark")
    await shoot(page, folder, "overview-desktop-dark")
    await page.set_viewport_size({"width": 375, "height": 812})
    await shoot(page, folder, "overview-phone-dark")
    await page.emulate_media(color_scheme="light")
    await shoot(page, folder, "overview-phone-light")
    # phone width: the page itself never scrolls sideways (the tables do, inside their box)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    await page.set_viewport_size({"width": 1280, "height": 900})
    for name, url, ready in [
        ("sessions", world.page_url("sessions"), "#sessions[data-loaded]"),
        ("session", world.page_url("session", session="h:s-gpt-1"), "#timeline[data-loaded]"),
        ("tools", world.page_url("tools"), "#tools[data-loaded]"),
    ]:
        await page.goto(url)
        await page.wait_for_selector(ready)
        await shoot(page, folder, name)
    await page.goto(world.page_url("session", session="h:s-gpt-1"))
    await page.wait_for_selector("#timeline[data-loaded]")
    await page.locator("#timeline .step").nth(1).get_by_role("link", name="call →").click()
    await page.wait_for_selector("#call[data-loaded]")
    await shoot(page, folder, "call", full=False)


POLL_S = 5
HIDE = """() => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
    document.dispatchEvent(new Event("visibilitychange"));
}"""
SHOW = HIDE.replace("() => true", "() => false")


async def test_refreshes_live_and_survives_api_errors(world: World, browser: Browser) -> None:
    """Polling: none while the tab is hidden; an API error shows a notice and polling goes on; new calls
    appear without a reload."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    console = Console(page)
    try:
        await page.goto(world.page_url(""))
        await page.wait_for_selector("#report[data-loaded]")

        async def unavailable(route: Any) -> None:
            await route.fulfill(status=503, content_type="application/json", body='{"error": "store is starting"}')

        await page.route("**/api/report?*", unavailable)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url) if "/api/report" in r.url else None)
        # while the tab is hidden the page does not poll; meanwhile an agent uses a new model
        hidden_at = time.monotonic()
        await page.evaluate(HIDE)
        written = (await world.serve.status())["calls_written"]
        async with openai.AsyncOpenAI(base_url=f"{world.serve.url}/openai/v1", api_key="k", max_retries=0) as c:
            calls = await agent_session(c, "late-model", "s-late", "latecomer")
        await world.serve.wait_for(lambda st: st["calls_written"] >= written + calls)
        await page.wait_for_timeout(max(0, POLL_S + 0.5 - (time.monotonic() - hidden_at)) * 1000)
        assert requests == []
        # shown again, it polls at once: the API fails, the page says so and keeps its last figures
        await page.evaluate(SHOW)
        notice = page.locator("#notice")
        await notice.wait_for(state="visible", timeout=2_000)
        assert "store is starting" in await notice.inner_text()
        assert await page.locator("#report tbody tr").count() == 3
        # the API is back: the next poll brings the new model and clears the notice, without a reload
        await page.unroute("**/api/report?*")
        await page.wait_for_selector('#report tr[data-model="late-model"]', timeout=2 * POLL_S * 1000)
        await notice.wait_for(state="hidden")
        # the only console errors are the browser's own lines about the refused requests
        assert all("503" in e for e in console.errors), console.errors
    finally:
        await context.close()
