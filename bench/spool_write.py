"""What the durability write costs: ``SpoolWriter.append`` (encode the frame, one ``writev`` into the page
cache) as the forwarder calls it, on the proxy's event loop, before the last byte of each answer.

    python bench/spool_write.py [--n 20000] [--dir /tmp/spool-bench]

Prints, per body size, the wall time per append (p50, p99, max) and the CPU time per append. The ticker
(fdatasync every fsync_interval, in a worker thread) runs meanwhile, as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from toolwatch.schemas.exchange import Exchange
from toolwatch.spool.writer import SpoolWriter


def exchange(n: int) -> Exchange:
    return Exchange(
        id=uuid.UUID(int=n + 1),
        started_at=datetime.now(UTC),
        upstream="openai",
        api="openai",
        method="POST",
        path="/v1/chat/completions",
        status=200,
        latency_ms=12.5,
        ttfb_ms=3.25,
        request_content_type="application/json",
        response_content_type="application/json",
        request_size=2000,
        response_size=1500,
        session_id="session-1",
        response_headers={"x-request-id": "req_0123456789abcdef"},
    )


async def run(n: int, size: int, directory: Path) -> dict[str, float]:
    writer = SpoolWriter(directory, cap_bytes=1 << 40, segment_bytes=8 << 20, segment_max_age=5.0)
    await writer.start()
    request, response = b"q" * size, b"r" * (size * 3 // 4)
    walls = []
    cpu0 = time.process_time()
    for i in range(n):
        t0 = time.perf_counter()
        writer.append(exchange(i), request, response)
        walls.append(time.perf_counter() - t0)
        if i % 200 == 0:
            await asyncio.sleep(0)  # let the ticker run, as between requests
    cpu = time.process_time() - cpu0
    await writer.close()
    walls.sort()
    return {
        "p50_us": statistics.median(walls) * 1e6,
        "p99_us": walls[int(len(walls) * 0.99)] * 1e6,
        "max_us": walls[-1] * 1e6,
        "cpu_us": cpu / n * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="spool-bench-"))
    print("| request body | append p50 | p99 | max | CPU per append |")
    print("|---:|---:|---:|---:|---:|")
    try:
        for size in (2_000, 16_000, 128_000):
            directory = base / f"s{size}"
            r = asyncio.run(run(args.n, size, directory))
            print(
                f"| {size:,} B | {r['p50_us']:.1f} µs | {r['p99_us']:.1f} µs | {r['max_us']:.0f} µs"
                f" | {r['cpu_us']:.1f} µs |"
            )
            shutil.rmtree(directory, ignore_errors=True)
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
