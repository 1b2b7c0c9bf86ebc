"""A server role that ``overhead_roles.py`` does not have: the same fake upstream, answering after a delay.

    python bench/wrk/roles.py slow-upstream SECONDS

Like ``overhead_roles.py upstream`` (the same reply, one JSON line ``{"url": ...}`` once it listens, exit
when standard input closes), but every request waits SECONDS before its answer starts, so that wrk's
connections stay open through the proxy (``many_connections.py``).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

import uvloop  # noqa: E402
from aiohttp import web  # noqa: E402
from overhead_roles import REPLY, _say, _until_stdin_closes  # noqa: E402

from tests.fakes.upstreams import FakeUpstream  # noqa: E402


class SlowUpstream(FakeUpstream):
    def __init__(self, delay: float) -> None:
        super().__init__(default=REPLY, record=False)
        self.delay = delay

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(self.delay)
        return await super()._handle(request)


async def slow_upstream(delay: float) -> None:
    async with SlowUpstream(delay) as fake:
        _say({"url": fake.url})
        await _until_stdin_closes()


def main() -> None:
    if sys.argv[1:2] != ["slow-upstream"] or len(sys.argv) != 3:
        raise SystemExit("usage: roles.py slow-upstream SECONDS")
    uvloop.run(slow_upstream(float(sys.argv[2])))


if __name__ == "__main__":
    main()
