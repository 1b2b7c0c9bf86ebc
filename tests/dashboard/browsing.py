"""What the dashboard's browser tests share: Debian's chromium driven by Playwright, a record of what a page
logged as errors, where screenshots go, and waiting for the read API of a ``toolwatch serve``."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import ConsoleMessage, Page

from tests.harness import ServeProcess

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs chromium at /usr/bin/chromium (apt-get install chromium)"
)


class Console:
    """Errors the page logged or threw."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")


def shots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``$TOOLWATCH_SCREENSHOTS`` (docs/screenshots to refresh the README's), else a temporary folder."""
    folder = os.environ.get("TOOLWATCH_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.getbasetemp() / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def shoot(page: Page, folder: Path, name: str, full: bool = True) -> None:
    await page.wait_for_timeout(150)  # let a chart redrawn for a new theme settle
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full)
    assert path.stat().st_size < 300_000, path  # small enough to keep in the repository


async def wait_for_api(serve: ServeProcess, path: str, predicate: Callable[[Any], bool], timeout: float = 30) -> Any:
    """Poll one read API answer (``/_toolwatch/api/...``) until ``predicate`` holds for it; the answer."""
    deadline = time.monotonic() + timeout
    answer: Any = None
    while time.monotonic() < deadline:
        status, answer = await serve.get(path)
        if status == 200 and predicate(answer):
            return answer
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{path}: condition not met; last answer {answer!r}; stderr:\n{serve.stderr.decode()[-3000:]}")
