from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.upstreams import FakeUpstream
from tests.faults.oracle import fake_upstream


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    """The fake model of the workload: request ``n`` is answered with the one tool call ``call-n``."""
    async with fake_upstream() as fake:
        yield fake
