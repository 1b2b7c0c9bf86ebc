from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.fakes.upstreams import FakeUpstream
from tests.harness import Harness, make_settings
from toolwatch.demo.script import Reply, ToolCallSpec


@pytest.fixture(scope="session", autouse=True)
def _user_data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The default store lives in the per-user data folder: no test, nor a CLI it starts, may write to the
    real one in the home directory."""
    home = tmp_path_factory.mktemp("xdg-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_DATA_HOME", str(home))
        yield home


@pytest.fixture(scope="session")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded store path for the whole test process (chdb opens one path per process)."""
    return tmp_path_factory.mktemp("chdb") / "store"


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
async def tw(store_path: Path, tmp_path: Path, fake: FakeUpstream) -> AsyncIterator[Harness]:
    """toolwatch in process, both built-in upstreams pointed at the fake."""
    h = Harness(make_settings(store_path, tmp_path / "spool", fake.url))
    await h.start()
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
async def tool_fake() -> AsyncIterator[FakeUpstream]:
    """A fake upstream whose every answer makes one tool call."""
    reply = Reply(text="ok", tool_calls=(ToolCallSpec("lookup", '{"key": "v"}'),))
    async with FakeUpstream(default=reply) as fake:
        yield fake
