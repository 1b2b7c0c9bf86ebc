"""Fixtures of the dashboard's browser tests: one chromium per test module, and a fresh page per test that
fails the test if the page logged an error or ran markup from the API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

from tests.dashboard.browsing import CHROMIUM, LAUNCH_ARGS, Console


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")
    p = await context.new_page()
    console = Console(p)
    try:
        yield p
        assert not console.errors, console.errors
        assert await p.evaluate("document.body.dataset.pwned") is None
    finally:
        await context.close()
