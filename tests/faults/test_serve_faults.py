"""Faults around a real ``toolwatch serve`` under load: the store down, SIGKILL of serve, of its process group
and of its recorder, a file-size limit that refuses spool writes, and the spool cap.

Every test counts rows against the client's oracle (``oracle.py``): each request answered completely is
stored exactly once, no request is stored twice, the rollups and the CLI agree with the tables. The store is
read after serve stopped, in a process of its own.
"""

from __future__ import annotations

import contextlib
import itertools
import resource
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.upstreams import FakeUpstream
from tests.faults.oracle import (
    KILL_TARGETS,
    CrashLoop,
    FaultServe,
    Load,
    Tally,
    Verdict,
    cli_problems,
    judge,
    kill,
    read_store,
    settled,
)
from tests.harness import StoreHolder

MiB = 1024 * 1024


@contextlib.asynccontextmanager
async def running(serve: FaultServe, load: Load | None = None) -> AsyncIterator[None]:
    """Whatever happens in the test, nothing it started outlives it."""
    try:
        yield
    finally:
        if load is not None:
            await load.close()
        if serve.proc is not None and serve.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                serve.proc.send_signal(signal.SIGKILL)
            await serve.reap()


async def stop_and_judge(serve: FaultServe, tally: Tally, data: Path, answered: set[int] | None = None) -> Verdict:
    """Stop serve as an operator would (SIGTERM: the recorder drains), then check the store and the CLI."""
    assert await serve.stop(signal.SIGTERM) == 0, serve.stderr.decode()[-3000:]
    counts = await read_store(serve.store)
    verdict = judge(counts, tally.answered if answered is None else answered, tally.sent)
    assert verdict.problems == [], verdict
    assert await cli_problems(serve.store, counts, data) == []
    return verdict


@pytest.mark.timeout(90)
async def test_store_down_under_load_then_everything_lands(tmp_path: Path, upstream: FakeUpstream) -> None:
    holder = await StoreHolder(tmp_path / "store").start()
    serve = await FaultServe(tmp_path, upstream.url).start()
    load = Load(concurrency=12, quota=600)
    async with running(serve, load):
        try:
            await serve.wait_for(lambda s: bool(s.get("recorder_alive")) and s.get("store_reachable") is False)
            await load.start()
            load.url = serve.url
            await load.wait_answered(300)
            st = await serve.status()
            assert st["store_reachable"] is False and st["calls_written"] == 0 and st["spool_lag_bytes"] > 0
        finally:
            await holder.release()  # the store comes back while the load goes on
        tally = await load.finish()
        assert len(tally.answered) == 600, tally.failed  # the outage never failed a request
        st = await serve.wait_for(settled)
        assert (st["exchanges_spooled"], st["calls_written"], st["records_dropped"]) == (600, 600, 0)
        verdict = await stop_and_judge(serve, tally, tmp_path)
    assert verdict.stored == 600


@pytest.mark.timeout(120)
async def test_sigkill_under_load_loses_nothing_answered(tmp_path: Path, upstream: FakeUpstream) -> None:
    crashes = CrashLoop(tmp_path, upstream.url, Load(concurrency=12))
    try:
        await crashes.start()
        for _ in range(6):
            r = await crashes.round()
            assert r.children, f"serve had no child process to kill ({r.target})"
            if r.target != "children":
                assert r.gone_after is not None and r.gone_after < 1.0, f"children outlived serve: {r}"
            assert r.restart < 30.0
        tally = await crashes.finish()
        assert crashes.serve is not None
        verdict = await stop_and_judge(crashes.serve, tally, tmp_path)
    finally:
        await crashes.close()
    assert [r.target for r in crashes.rounds] == [*KILL_TARGETS, *KILL_TARGETS]
    # what was not answered is what was in flight when serve died (the recorder's death fails no request)
    serve_kills = sum(r.target != "children" for r in crashes.rounds)
    assert verdict.answered >= 7 * 80 and verdict.sent - verdict.answered <= serve_kills * 12
    for before, r in itertools.pairwise(crashes.rounds):
        if r.target == "children":
            assert r.failed == before.failed, f"a request failed because the recorder died: {r}"


@pytest.mark.timeout(90)
async def test_file_size_limit_refuses_frames_and_recording_goes_on(tmp_path: Path, upstream: FakeUpstream) -> None:
    limit = 256 * 1024  # a segment (8 MiB by default) hits it every ~28 frames of ~9 KB
    serve = FaultServe(tmp_path, upstream.url, env={"TOOLWATCH_SEGMENT_MAX_AGE": "60"}, fsize=limit)
    await serve.start()
    load = Load(concurrency=8, quota=150, pad=8000)
    async with running(serve, load):
        st = await serve.wait_for(lambda s: bool(s.get("recorder_alive")))
        # the limit is for the spool writer: the recorder's own files (the embedded store's parts) are not
        # part of this test, so its soft limit is lifted again
        resource.prlimit(st["recorder_pid"], resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        await load.start()
        load.url = serve.url
        tally = await load.finish()
        assert len(tally.answered) == 150, tally.failed  # the proxy never fails a request for its own trouble
        st = await serve.wait_for(lambda s: s["exchanges_spooled"] + s["records_refused"] == 150)
        refused = st["records_refused"]
        assert refused >= 3 and st["spool_write_errors"] == refused and st["records_dropped"] == 0
        st = await serve.wait_for(settled)
        # what was written is whole: no torn frame was left behind for the reader
        assert (st["calls_written"], st["damaged_frames"], st["dead_letters"]) == (150 - refused, 0, 0)
        verdict = await stop_and_judge(serve, tally, tmp_path, answered=set())
    assert verdict.stored == 150 - refused
    lost = tally.sent - verdict.stored_ids
    assert len(lost) == refused
    # the writer sealed the segment it could not grow and went on in a new one
    assert sum(n > min(lost) for n in verdict.stored_ids) >= 100
    assert b"File too large" in serve.stderr


@pytest.mark.timeout(90)
async def test_spool_cap_drops_are_counted_and_the_rest_lands(tmp_path: Path, upstream: FakeUpstream) -> None:
    holder = await StoreHolder(tmp_path / "store").start()
    serve = FaultServe(tmp_path, upstream.url, env={"TOOLWATCH_SPOOL_CAP_BYTES": str(MiB)})
    await serve.start()
    load = Load(concurrency=8, quota=120, pad=20_000)  # ~21 KB frames: about 48 fit under the cap
    async with running(serve, load):
        try:
            await serve.wait_for(lambda s: bool(s.get("recorder_alive")) and s.get("store_reachable") is False)
            await load.start()
            load.url = serve.url
            tally = await load.finish()
            assert len(tally.answered) == 120, tally.failed
            st = await serve.wait_for(lambda s: s["exchanges_spooled"] + s["records_dropped"] == 120)
            spooled, dropped = st["exchanges_spooled"], st["records_dropped"]
            assert dropped > 0 and spooled > 0 and st["spool_bytes"] <= MiB
            assert st["calls_written"] == 0
        finally:
            await holder.release()
        st = await serve.wait_for(settled)
        assert st["calls_written"] == spooled
        verdict = await stop_and_judge(serve, tally, tmp_path, answered=set())
    assert verdict.stored == spooled and verdict.stored + dropped == 120


LATE_SPOOL = '''
import asyncio
from toolwatch.spool.writer import SpoolWriter

append = SpoolWriter.append


def late(self, exchange, request, response):
    """A broken proxy: the frame is written 50 ms after the answer went out."""
    asyncio.get_running_loop().call_later(0.05, append, self, exchange, request, response)
    return True


SpoolWriter.append = late
'''


@pytest.mark.timeout(60)
async def test_the_oracle_catches_a_proxy_that_spools_after_answering(tmp_path: Path, upstream: FakeUpstream) -> None:
    """The suite can fail: with the frame written after the answer, a SIGKILL loses answered requests."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(LATE_SPOOL)
    data = tmp_path / "data"
    data.mkdir()
    crashes = CrashLoop(data, upstream.url, Load(concurrency=12), env={"PYTHONPATH": str(hook)})
    try:
        await crashes.start()
        assert crashes.serve is not None
        crashes.load.allow(150)
        await crashes.load.wait_answered(80)
        await kill(crashes.serve, "serve")  # under load
        crashes.env = None  # the serve that drains the spool is a sound one
        await crashes.start_serve()
        tally = await crashes.finish()
        assert crashes.serve is not None
        assert await crashes.serve.stop(signal.SIGTERM) == 0
    finally:
        await crashes.close()
    verdict = judge(await read_store(crashes.serve.store), tally.answered, tally.sent)
    assert verdict.missing and any("not stored" in p for p in verdict.problems)
