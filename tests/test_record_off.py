"""``record = false``: a plain proxy, for measuring what recording costs. Requests are forwarded as always;
no spool frame is written, no recorder process runs, and the banner says so."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.fakes.upstreams import FakeUpstream
from tests.faults.oracle import children
from tests.harness import ServeProcess, send_openai


@pytest.mark.timeout(90)
async def test_record_off_forwards_and_keeps_nothing(tmp_path: Path, tool_fake: FakeUpstream) -> None:
    tw = ServeProcess(tmp_path, tool_fake.url, env={"TOOLWATCH_RECORD": "false"})
    await tw.start()
    try:
        assert tw.proc is not None and tw.proc.stdout is not None
        banner = []
        while not (banner and banner[-1].startswith("serve keeps this terminal")):
            banner.append((await asyncio.wait_for(tw.proc.stdout.readline(), 10)).decode())
        assert any(line.strip().startswith("recording  off") for line in banner)
        await send_openai(tw.url, 5)  # each answer checked by the SDK: forwarded as always
        assert len(tool_fake.received) == 5
        await asyncio.sleep(0.5)  # longer than the segment age the harness sets: a frame would be on disk
        frames = [p for p in (tmp_path / "spool").rglob("*.seg") if p.stat().st_size > 0]
        assert frames == []
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children(tw.proc.pid)]
        assert not any(b"recorder_process" in c for c in commands), commands
    finally:
        await tw.stop()
    assert tw.proc.returncode == 0
    assert os.path.exists(tmp_path / "spool")
