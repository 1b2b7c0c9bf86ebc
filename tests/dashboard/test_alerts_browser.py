"""The alerts in chromium against a live ``toolwatch serve`` that evaluates them every second.

Traffic through the official OpenAI SDK opens a real alert: agent ``canary-bot`` runs one-step sessions on
``old-model`` without a malformed tool call, then on ``new-model``, whose every other answer is a tool call
with invalid JSON arguments. Once the read API lists the alert open, the browser checks the overview's time
axis (the switch and the alert are marked), the nav's count of open alerts, and the alerts page: the alert's
models, metric and evidence, its filters kept in the URL, a failed write shown in the notice line, and the
writes themselves (acknowledge, silence, unsilence) as the page and the API then show them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, Route, expect

from tests.dashboard.browsing import Console, needs_chromium, shoot, shots_dir, wait_for_api
from tests.fakes.upstreams import FakeUpstream, Received, Reply, ToolCallSpec
from tests.harness import ServeProcess

pytestmark = [needs_chromium, pytest.mark.asyncio(loop_scope="module")]

AGENT = "canary-bot"
OLD, NEW = "old-model", "new-model"
N_OLD, N_NEW = 60, 40
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        },
    }
]
CALL = Reply(tool_calls=(ToolCallSpec("lookup", '{"q": "weather"}'),))
CUT = Reply(tool_calls=(ToolCallSpec("lookup", '{"q": "weath'),))  # invalid JSON arguments
TASK = re.compile(r"canary task (\d+)")


def cut(i: int) -> bool:
    """Whether session ``i`` gets a malformed tool call: every other one on the new model."""
    return i >= N_OLD and i % 2 == 1


def script(received: Received) -> Reply:
    m = TASK.search(json.dumps(received.messages[:1]))
    return CUT if m and cut(int(m.group(1))) else CALL


@dataclass
class Canary:
    serve: ServeProcess
    since: str
    until: str
    alert: dict[str, Any]

    def page_url(self, page: str, **extra: str) -> str:
        query = urllib.parse.urlencode({"since": self.since, "until": self.until, **extra})
        return f"{self.serve.url}/_toolwatch/{page}?{query}"

    async def alert_now(self) -> dict[str, Any]:
        status, alerts = await self.serve.get(f"/_toolwatch/api/alerts?agent={AGENT}")
        assert status == 200, alerts
        [alert] = [a for a in alerts if a["id"] == self.alert["id"]]
        return alert  # type: ignore[no-any-return]


async def sessions(client: openai.AsyncOpenAI, model: str, numbers: range) -> None:
    """One-step sessions, each with its own id and first message."""

    async def one(i: int) -> None:
        headers = {"Toolwatch-Agent": AGENT, "Toolwatch-Session-Id": f"canary-{i}"}
        messages: Any = [{"role": "user", "content": f"canary task {i}"}]
        await client.chat.completions.create(model=model, messages=messages, tools=TOOLS, extra_headers=headers)

    await asyncio.gather(*(one(i) for i in numbers))


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def canary(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Canary]:
    data = tmp_path_factory.mktemp("alerts")
    async with FakeUpstream(script) as fake:
        serve = await ServeProcess(data, fake.url, env={"TOOLWATCH_ALERT_INTERVAL": "1"}).start()
        try:
            start = dt.datetime.now(dt.UTC).replace(microsecond=0)
            async with openai.AsyncOpenAI(base_url=f"{serve.url}/openai/v1", api_key="sk-t", max_retries=0) as c:
                await sessions(c, OLD, range(N_OLD))
                await sessions(c, NEW, range(N_OLD, N_OLD + N_NEW))
            alerts = await wait_for_api(serve, f"/_toolwatch/api/alerts?open=1&agent={AGENT}", bool)
            since = (start - dt.timedelta(seconds=30)).isoformat()
            until = (dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=1)).isoformat()
            yield Canary(serve, since, until, alerts[0])
        finally:
            await serve.stop()


async def test_the_traffic_opens_a_switch_regression(canary: Canary) -> None:
    alert = canary.alert
    assert alert["kind"] == "switch_regression" and alert["state"] == "open"
    assert (alert["old_model"], alert["new_model"]) == (OLD, NEW)
    assert alert["metric"] == "malformed_session_rate"
    assert (alert["before"], alert["after"]) == (0.0, 0.5)
    assert (alert["n_before"], alert["n_after"]) == (N_OLD, N_NEW)
    assert alert["acknowledged_by"] is None and alert["silenced_until"] is None


async def test_time_axis_marks_the_switch_and_the_alert(canary: Canary, page: Page) -> None:
    await page.goto(canary.page_url(""))
    await page.wait_for_selector("#charts[data-loaded]")
    switch = page.locator(f'#charts .switch-mark[data-agent="{AGENT}"]')
    assert await switch.count() >= 1
    title = await switch.first.get_attribute("title") or ""
    assert title.startswith(f"{AGENT}: {OLD} → {NEW} (full, 100%) · ")
    marker = page.locator(f'#charts .alert-mark[data-alert="{canary.alert["id"]}"]')
    assert await marker.count() >= 1
    assert await marker.first.get_attribute("data-state") == "open"
    assert "a-open" in (await marker.first.get_attribute("class") or "")
    title = await marker.first.get_attribute("title") or ""
    assert title.startswith(f"switch regression, open: {AGENT} {OLD} → {NEW}, malformed_session_rate 0.0% → 50.0%")
    # the list under the charts says the same
    assert f"{AGENT}: {OLD} → {NEW} (full, 100%)" in await page.locator("#switches").inner_text()
    listed = await page.locator(f'#alert-marks li[data-alert="{canary.alert["id"]}"]').inner_text()
    assert "switch regression (open)" in listed and "malformed_session_rate 0.0% → 50.0%" in listed
    # the nav counts the open alert, and its link keeps the window
    nav = page.locator('nav a[data-page="alerts"]')
    await expect(nav.locator(".count")).to_have_text("1")
    href = await nav.get_attribute("href")
    assert href == "alerts?" + urllib.parse.urlencode({"since": canary.since, "until": canary.until})


async def test_alerts_screenshot(canary: Canary, page: Page, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Before anyone acts on the alert (the next test does)."""
    await page.goto(canary.page_url("alerts"))
    await page.wait_for_selector("#alerts[data-loaded]")
    await shoot(page, shots_dir(tmp_path_factory), "alerts")


async def test_alerts_page_lists_filters_and_acts(canary: Canary, browser: Browser) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")
    page = await context.new_page()
    console = Console(page)
    try:
        await page.goto(canary.page_url(""))
        await page.locator('nav a[data-page="alerts"]').click()
        await page.wait_for_selector("#alerts[data-loaded]")
        card = page.locator(f'#alerts li.alert[data-id="{canary.alert["id"]}"]')
        assert await card.get_attribute("data-state") == "open"
        assert await card.locator(".models").inner_text() == f"{OLD} → {NEW}"
        assert await card.locator(".metric").inner_text() == "malformed_session_rate"
        assert await card.locator(".values").inner_text() == "0.0% → 50.0%"
        evidence = await card.locator(".evidence").inner_text()
        assert "95 % interval" in evidence and evidence.endswith(f"n = {N_OLD} → {N_NEW} sessions")
        assert await card.locator(".detail").inner_text() == canary.alert["detail"]
        # the example sessions are new-model sessions with the malformed call, and open their timelines
        examples = await card.locator("a.example").all_inner_texts()
        assert examples and all(cut(int(e.removeprefix("h:canary-"))) for e in examples), examples
        href = await card.locator("a.example").first.get_attribute("href") or ""
        assert href.startswith(f"{canary.serve.url}/_toolwatch/session?session=h%3Acanary-")

        # filters go to the URL; a kind without alerts empties the list
        await page.get_by_label("open only").check()
        await page.get_by_label("kind").select_option("drift")
        await expect(page.locator("#alerts-empty")).to_be_visible()
        query = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)
        assert query["open"] == ["1"] and query["kind"] == ["drift"]
        assert "open=1" in (await page.locator("#json-twin").get_attribute("href") or "")
        await page.get_by_label("kind").select_option("")
        await expect(card).to_be_visible()
        await page.reload()
        await page.wait_for_selector("#alerts[data-loaded]")
        assert await page.get_by_label("open only").is_checked()
        await expect(card).to_be_visible()

        # a write the API refuses: the page says why, in the notice line
        async def refuse(route: Route) -> None:
            await route.fulfill(status=404, content_type="application/json", body='{"error": "no alert \'x\'"}')

        await page.route("**/api/alerts/silence?*", refuse)
        await card.get_by_role("button", name="Silence 24 h").click()
        notice = page.locator("#notice")
        await expect(notice).to_have_text("Silence 24 h failed: no alert 'x' (HTTP 404)")
        await page.unroute("**/api/alerts/silence?*")

        # acknowledge, as the name given
        await page.get_by_label("acting as").fill("pw-tester")
        await page.get_by_label("acting as").dispatch_event("change")
        await card.get_by_role("button", name="Acknowledge").click()
        await expect(card.locator(".b-acked")).to_have_text("acknowledged by pw-tester")
        await expect(notice).to_be_hidden()
        await expect(card.get_by_role("button", name="Acknowledge")).to_have_count(0)
        alert = await canary.alert_now()
        assert alert["acknowledged_by"] == "pw-tester" and alert["acknowledged_at"]
        assert alert["state"] == "open"

        # silence for an hour, then lift it
        await card.get_by_role("button", name="Silence 1 h").click()
        await expect(card.locator(".b-silenced")).to_contain_text("silenced until")
        alert = await canary.alert_now()
        until = dt.datetime.fromisoformat(alert["silenced_until"])
        assert dt.timedelta(minutes=55) < until - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=1)
        _, silences = await canary.serve.get("/_toolwatch/api/silences")
        assert [(s["alert_id"], s["created_by"]) for s in silences] == [(canary.alert["id"], "pw-tester")]
        await card.get_by_role("button", name="Unsilence").click()
        await expect(card.locator(".b-silenced")).to_have_count(0)
        assert (await canary.alert_now())["silenced_until"] is None
        # the open alert is still counted, quietly now that someone is on it
        await page.reload()
        count = page.locator('nav a[data-page="alerts"] .count')
        await expect(count).to_have_text("1")
        await expect(count).to_have_class(re.compile(r"\bquiet\b"))

        # the only console error is the browser's own line about the refused write
        assert [e for e in console.errors if "404" not in e] == [], console.errors
        assert await page.evaluate("document.body.dataset.pwned") is None
    finally:
        await context.close()
