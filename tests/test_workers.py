"""``toolwatch serve --workers 2``: two proxy processes on the one port serve bound, each with its own spool
writer, one recorder reading both. Every answered request is stored exactly once, both workers answer,
``/metrics`` shows the same totals whichever worker answers it, and no worker outlives a SIGKILLed serve
by more than a second. The workload and the checks of the store are the fault suite's (``oracle``)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.oracle import (
    FaultServe,
    children,
    complete,
    fake_upstream,
    gone,
    judge,
    read_store,
    request_body,
    settled,
)
from tests.harness import ServeProcess, run_cli

PATH = "/openai/v1/chat/completions"


async def burst(url: str, numbers: range, concurrency: int = 8) -> set[int]:
    """Send requests ``numbers`` over ``concurrency`` new connections; the numbers answered whole."""
    answered: set[int] = set()
    pending = iter(numbers)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as s:

        async def client() -> None:
            for n in pending:
                headers = {"content-type": "application/json", "authorization": "Bearer sk-x"}
                headers["Toolwatch-Property-Req"] = str(n)
                async with s.post(url + PATH, data=request_body(n), headers=headers) as r:
                    if complete(n, r.status, await r.read()):
                        answered.add(n)

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return answered


async def ask_one_worker(url: str) -> tuple[dict[str, Any], bytes]:
    """``/status`` and ``/metrics`` over one new connection, so from one worker (the status names it)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as s:
        async with s.get(url + "/_toolwatch/api/status") as r:
            status = await r.json()
        async with s.get(url + "/metrics") as r:
            assert r.status == 200
            return status, await r.read()


def totals(exposition: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every counter and histogram sample (gauges are read at scrape time, so they may move)."""
    found = {}
    for family in text_string_to_metric_families(exposition.decode()):
        if family.type in ("counter", "histogram"):
            for sample in family.samples:
                if not sample.name.endswith("_created"):
                    found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_two_workers_answer_and_every_answer_is_stored_once(tmp_path: Path) -> None:
    async with fake_upstream() as fake:
        tw = await ServeProcess(tmp_path, fake.url, "--workers", "2").start()
        answered: set[int] = set()
        sent = 0
        try:
            spooled: dict[str, int] = {}
            for _ in range(10):  # connections go to whichever worker accepts first: until both have some
                answered |= await burst(tw.url, range(sent, sent + 40))
                sent += 40
                spooled = {}
                for _ in range(100):
                    status = await tw.status()
                    spooled[status["worker"]] = status["exchanges_spooled"]
                    if len(spooled) == 2:
                        break
                if len(spooled) == 2 and min(spooled.values()) > 0 and sum(spooled.values()) == len(answered):
                    break
            assert len(answered) == sent
            assert sorted(spooled) == ["w0", "w1"] and min(spooled.values()) > 0, spooled
            assert sum(spooled.values()) == sent, spooled
            await tw.wait_for(lambda s: s.get("calls_written") == sent and s.get("spool_lag_bytes") == 0)

            seen: dict[str, int] = {}
            expositions = []
            for _ in range(100):  # several times from each worker
                status, exposition = await ask_one_worker(tw.url)
                seen[status["worker"]] = seen.get(status["worker"], 0) + 1
                expositions.append(totals(exposition))
                if len(seen) == 2 and min(seen.values()) >= 3:
                    break
            assert min(seen.get("w0", 0), seen.get("w1", 0)) >= 3, seen
            first = expositions[0]
            assert all(e == first for e in expositions)
            assert first[("toolwatch_proxy_overhead_seconds_count", (("upstream", "openai"),))] == sent
            assert first[("toolwatch_records_dropped_total", ())] == 0
            assert sum(v for (name, _), v in first.items() if name == "toolwatch_llm_calls_total") == sent

            # the port is bound once, without SO_REUSEPORT: a second serve on it (its own store) cannot start
            port = tw.url.rsplit(":", 1)[1]
            other = ["--store", f"chdb://{tmp_path}/other", "--spool", str(tmp_path / "other-spool")]
            rc, out, err = await run_cli("serve", "--port", port, *other, "--workers", "2", cwd=tmp_path)
            assert rc == 2 and out == "" and f"port {port} on 127.0.0.1 is in use" in err, err
        finally:
            assert await tw.stop() == 0, tw.stderr.decode()[-3000:]
    counts = await read_store(tw.store)
    verdict = judge(counts, answered)
    assert not verdict.problems, verdict.problems
    assert counts["llm_calls"] == {"count": sent, "uniq": sent}


async def test_no_worker_outlives_a_killed_serve_and_a_single_worker_stores_what_they_spooled(
    tmp_path: Path,
) -> None:
    async with fake_upstream() as fake:
        tw = await FaultServe(tmp_path, fake.url, env={"TOOLWATCH_WORKERS": "2"}).start()
        try:
            answered = await burst(tw.url, range(60))
            kids = children(tw.pid)
            workers = [pid for pid in kids if b"toolwatch.worker_process" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            assert len(workers) == 2 and len(kids) == 3, kids
            os.kill(tw.pid, signal.SIGKILL)
            killed = time.monotonic()
            while not all(gone(pid) for pid in kids) and time.monotonic() - killed < 1.0:
                await asyncio.sleep(0.01)
            assert [pid for pid in kids if not gone(pid)] == [], "a child of serve outlived it by 1 s"
        finally:
            await tw.kill()
        # one worker now: the other's segment left open is sealed, and everything answered lands once
        again = await FaultServe(tmp_path, fake.url, env={"TOOLWATCH_WORKERS": "1"}).start()
        try:
            await again.wait_for(settled)
        finally:
            assert await again.stop() == 0, again.stderr.decode()[-3000:]
    verdict = judge(await read_store(again.store), answered, sent=range(60))
    assert not verdict.problems, verdict.problems
    assert not verdict.missing and verdict.stored >= len(answered)
