"""Benchmark (not a test): `toolwatch report` over 10 million tool calls across 1 million LLM calls.

Generates the data inside the embedded store with INSERT ... SELECT (so the materialized views run as in
production), then times the report analyzer in-process (what `toolwatch report --store` runs) and the
whole CLI command. Usage: python bench/report_10m.py [--calls 1000000] [--per-call 10] [--runs 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from toolwatch.analyzers import runner
from toolwatch.analyzers.params import report_params
from toolwatch.store.client import open_client
from toolwatch.store.migrate import migrate

STEPS = 10  # steps per session


def generate(client, calls: int, per_call: int, start: dt.datetime) -> None:  # type: ignore[no-untyped-def]
    """Sessions of STEPS steps; each step makes `per_call` tool calls whose results come back in the next
    step; the last step's calls get no result (abandoned). ~3% malformed calls, 5% error results, 1% 500s.
    Columns the recorder fills at ingest (malformed kinds, loop signatures, links, producing calls) are
    generated consistently with the tool-call and result rows."""
    p = {"start": start, "calls": calls, "per": per_call, "steps": STEPS}
    uuid_of = "toUUID(concat('00000000-0000-4000-8000-', leftPad(toString({n}), 12, '0')))"
    kind = "multiIf(({m}) % 50 = 0, 'invalid_json', ({m}) % 97 = 0, 'schema_violation', '')"
    client.command(
        f"""
        INSERT INTO llm_calls (call_id, ts, upstream, api, endpoint, method, path, model_requested,
            model_returned, model, stream, status, outcome, parse_status, finish_reason, input_tokens,
            output_tokens, latency_ms, ttfb_ms, request_bytes, response_bytes, tool_call_count, session_id,
            agent, conv_key, opening_key, first_prior_tool_call_id, link_key, malformed_count,
            malformed_kinds, tool_sigs)
        SELECT
            {uuid_of.format(n="number")}, {{start:DateTime64(3)}} + toIntervalMillisecond(number * 80),
            'openai', 'openai', 'chat_completions', 'POST', '/v1/chat/completions', m, m, m, false,
            if(failed_http, 500, 200), if(failed_http, 'http_error', 'ok'), 'ok',
            if(failed_http, NULL, 'tool_calls'), 1000 + number % 500, 50 + number % 40,
            300 + (number % 1000), 120 + (number % 300), 4000, 900, if(failed_http, 0, {{per:UInt32}}), '',
            'agent', skey, hex(cityHash64(session, 1)),
            if(step = 0, '', concat('call_', toString(session * {{steps:UInt32}} * {{per:UInt32}}))),
            if(step = 0, '', skey), length(kinds), kinds,
            if(failed_http, [], arrayMap(i -> cityHash64(i % 7, (number * {{per:UInt32}} + i) % 13),
                range({{per:UInt32}})))
        FROM (
            SELECT number, intDiv(number, {{steps:UInt32}}) AS session, number % {{steps:UInt32}} AS step,
                   number % 100 = 99 AS failed_http, hex(cityHash64(session)) AS skey,
                   ['gpt-a', 'claude-b', 'glm-4'][session % 3 + 1] AS m,
                   if(failed_http, [], arrayFilter(x -> x != '',
                       arrayMap(i -> {kind.format(m="number * {per:UInt32} + i")}, range({{per:UInt32}})))) AS kinds
            FROM numbers({{calls:UInt64}})
        )
        """,
        parameters=p,
        settings={"max_insert_threads": 2},
    )
    client.command(
        f"""
        INSERT INTO tool_calls (tool_call_uid, call_id, ts, upstream, model, session_id, agent, call_index,
            tool_call_id, name, raw_arguments, arguments, malformed_kind, conv_key)
        SELECT
            generateUUIDv4(number), {uuid_of.format(n="n")}, {{start:DateTime64(3)}} + toIntervalMillisecond(n * 80),
            'openai', ['gpt-a', 'claude-b', 'glm-4'][intDiv(n, {{steps:UInt32}}) % 3 + 1], '', 'agent',
            number % {{per:UInt32}}, concat('call_', toString(number)), concat('tool_', toString(number % 7)),
            concat('{{"q": "', toString(number % 13), '"}}'), concat('{{"q":"', toString(number % 13), '"}}'),
            {kind.format(m="number")}, hex(cityHash64(intDiv(n, {{steps:UInt32}})))
        FROM (SELECT number, intDiv(number, {{per:UInt32}}) AS n FROM numbers({{calls:UInt64}} * {{per:UInt32}}))
        WHERE n % 100 != 99
        """,
        parameters=p,
        settings={"max_insert_threads": 2},
    )
    client.command(
        f"""
        INSERT INTO tool_results (result_uid, call_id, ts, upstream, session_id, agent, tool_call_id, content,
            content_bytes, truncated, is_error, error_rule, classified_at, producer_call_id)
        SELECT
            generateUUIDv4(number), {uuid_of.format(n="n + 1")},
            {{start:DateTime64(3)}} + toIntervalMillisecond((n + 1) * 80),
            'openai', '', 'agent', concat('call_', toString(number)),
            if(number % 20 = 0, 'Error: tool failed', 'result text'), 11, false, NULL,
            if(number % 20 = 0, 'error_prefix', ''), {{start:DateTime64(3)}} + toIntervalMillisecond((n + 1) * 80),
            {uuid_of.format(n="n")}
        FROM (SELECT number, intDiv(number, {{per:UInt32}}) AS n FROM numbers({{calls:UInt64}} * {{per:UInt32}}))
        WHERE n % {{steps:UInt32}} != {{steps:UInt32}} - 1 AND n % 100 != 99
        """,
        parameters=p,
        settings={"max_insert_threads": 2},
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--per-call", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", help="keep (or reuse) the generated store in this directory")
    args = ap.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tw-bench-"))
    store = f"chdb://{base / 'store'}"
    client = open_client(store, "toolwatch")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = now - dt.timedelta(milliseconds=args.calls * 80 + 60_000)
    migrate(client)
    counts = client.query("SELECT count() FROM llm_calls").result_rows
    if not counts or counts[0][0] == 0:
        t = time.perf_counter()
        generate(client, args.calls, args.per_call, start)
        print(f"generated in {time.perf_counter() - t:.1f}s")
    rows = client.query(
        "SELECT (SELECT count() FROM llm_calls), (SELECT count() FROM tool_calls), (SELECT count() FROM tool_results)"
    ).result_rows[0]
    print(f"llm_calls={rows[0]:,} tool_calls={rows[1]:,} tool_results={rows[2]:,}")
    since = f"{int((now - start).total_seconds()) + 3600}s"
    times = []
    for _ in range(args.runs):
        params = report_params(since=since)
        t = time.perf_counter()
        report = runner.run(client, "report", **params)
        times.append(time.perf_counter() - t)
    client.close()
    print(json.dumps(report[:1], indent=1, default=str))
    print(f"report in-process: runs={[round(x, 2) for x in times]} median={statistics.median(times):.2f}s")
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "toolwatch", "report", "--store", store, "--since", since],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    cli = time.perf_counter() - t
    print(out.stdout or out.stderr)
    print(f"toolwatch report (whole command, incl. start-up): {cli:.2f}s; machine: {os.cpu_count()} cores")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
