"""Benchmark (not a test): the cost of one alert evaluation over a week of stored traffic at 100 calls/s.

Generates a week of traffic inside the embedded store with INSERT ... SELECT (60.5 million LLM calls in
sessions of 10 steps, one tool call each, ~2 % malformed; the per-session indicators the evaluator keeps,
as it would have kept them), then runs the evaluator as the recorder does: every 30 s of new traffic (3,000
calls, one agent switching a share of its sessions to a new model, so a switch test runs at every
evaluation), one evaluation, timed. Usage:

    python bench/alert_evaluation.py [--rate 100] [--days 7] [--rounds 6] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from toolwatch.alerts.evaluate import Evaluator
from toolwatch.schemas.settings import load_settings
from toolwatch.store.handle import StoreHandle

STEPS = 10
UUID = "toUUID(concat('00000000-0000-4000-8000-', leftPad(toString({n}), 12, '0')))"


def calls(client: Any, first: int, count: int, start: dt.datetime, spacing_ms: float, new_model: str = "") -> None:
    """LLM calls ``first`` .. ``first + count`` (numbered across the whole run), with their tool calls and
    results. Sessions of STEPS steps; every third session is on each of three models, except that with
    ``new_model`` every fourth session of the first model's goes to it."""
    p = {"first": first, "count": count, "start": start, "ms": spacing_ms, "steps": STEPS, "new": new_model}
    client.command(
        f"""
        INSERT INTO llm_calls (call_id, ts, upstream, api, endpoint, method, path, model_requested, model_returned,
            model, stream, status, outcome, parse_status, finish_reason, input_tokens, output_tokens, latency_ms,
            ttfb_ms, request_bytes, response_bytes, tool_call_count, session_id, agent, conv_key, opening_key,
            first_prior_tool_call_id, link_key, malformed_count, malformed_kinds, tool_sigs)
        SELECT {UUID.format(n="n")}, {{start:DateTime64(3)}} + toIntervalMillisecond(toUInt64(n * {{ms:Float64}})),
            'openai', 'openai', 'chat_completions', 'POST', '/v1/chat/completions', m, m, m, false, 200, 'ok', 'ok',
            if(step = {{steps:UInt32}} - 1, 'stop', 'tool_calls'), 1000, 60, 300 + n % 700, 120, 4000, 900,
            if(step = {{steps:UInt32}} - 1, 0, 1), '', 'agent', skey, hex(cityHash64(session, 1)),
            if(step = 0, '', concat('c', toString(n - 1))), if(step = 0, '', skey), length(kinds), kinds, []
        FROM (
            SELECT number + {{first:UInt64}} AS n, intDiv(n, {{steps:UInt32}}) AS session,
                   n % {{steps:UInt32}} AS step, hex(cityHash64(session)) AS skey,
                   multiIf({{new:String}} != '' AND session % 12 = 0, {{new:String}},
                           ['gpt-a', 'claude-b', 'glm-4'][session % 3 + 1]) AS m,
                   if(n % 500 = 0 AND step < {{steps:UInt32}} - 1, ['invalid_json'], []) AS kinds
            FROM numbers({{count:UInt64}})
        )
        """,
        parameters=p,
        settings={"max_insert_threads": 2},
    )
    client.command(
        f"""
        INSERT INTO tool_calls (tool_call_uid, call_id, ts, upstream, model, session_id, agent, call_index,
            tool_call_id, name, raw_arguments, arguments, malformed_kind, conv_key)
        SELECT generateUUIDv4(n), {UUID.format(n="n")},
            {{start:DateTime64(3)}} + toIntervalMillisecond(toUInt64(n * {{ms:Float64}})), 'openai',
            multiIf({{new:String}} != '' AND intDiv(n, {{steps:UInt32}}) % 12 = 0, {{new:String}},
                    ['gpt-a', 'claude-b', 'glm-4'][intDiv(n, {{steps:UInt32}}) % 3 + 1]),
            '', 'agent', 0, concat('c', toString(n)), 'lookup', '{{"q": 1}}', '{{"q":1}}',
            if(n % 500 = 0, 'invalid_json', ''), hex(cityHash64(intDiv(n, {{steps:UInt32}})))
        FROM (SELECT number + {{first:UInt64}} AS n FROM numbers({{count:UInt64}}))
        WHERE n % {{steps:UInt32}} != {{steps:UInt32}} - 1
        """,
        parameters=p,
        settings={"max_insert_threads": 2},
    )
    client.command(
        f"""
        INSERT INTO tool_results (result_uid, call_id, ts, upstream, session_id, agent, tool_call_id, content,
            content_bytes, truncated, is_error, error_rule, classified_at, producer_call_id)
        SELECT generateUUIDv4(n), {UUID.format(n="n + 1")},
            {{start:DateTime64(3)}} + toIntervalMillisecond(toUInt64((n + 1) * {{ms:Float64}})), 'openai', '',
            'agent', concat('c', toString(n)), if(n % 40 = 0, 'Error: failed', 'ok'), 6, false, NULL,
            if(n % 40 = 0, 'error_prefix', ''), now64(3), {UUID.format(n="n")}
        FROM (SELECT number + {{first:UInt64}} AS n FROM numbers({{count:UInt64}}))
        WHERE n % {{steps:UInt32}} != {{steps:UInt32}} - 1
        """,
        parameters=p,
        settings={"max_insert_threads": 2},
    )


def facts(client: Any, sessions: int, start: dt.datetime, spacing_ms: float) -> None:
    """The per-session indicators the evaluator would have kept for the generated week."""
    client.command(
        """
        INSERT INTO session_facts (agent, skey, model, requested, ts, last_ts, steps, outcome, malformed,
            tool_error, cascade, updated_at)
        SELECT 'agent', concat('k:', hex(cityHash64(s))), m, m,
            {start:DateTime64(3)} + toIntervalMillisecond(toUInt64(s * {steps:UInt32} * {ms:Float64})),
            {start:DateTime64(3)} + toIntervalMillisecond(toUInt64((s + 1) * {steps:UInt32} * {ms:Float64})),
            {steps:UInt32}, if(s % 50 = 0, 'failed', 'success'), s % 50 = 0, s % 4 = 0, s % 100 = 0, now64(6)
        FROM (SELECT number AS s, ['gpt-a', 'claude-b', 'glm-4'][s % 3 + 1] AS m FROM numbers({n:UInt64}))
        """,
        parameters={"start": start, "ms": spacing_ms, "steps": STEPS, "n": sessions},
        settings={"max_insert_threads": 2},
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=100.0, help="LLM calls per second (100)")
    ap.add_argument("--days", type=float, default=7.0, help="days of stored traffic (7)")
    ap.add_argument("--rounds", type=int, default=6, help="evaluations timed, 30 s of traffic apart (6)")
    ap.add_argument("--keep", help="keep (or reuse) the generated store in this directory")
    args = ap.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tw-alerts-"))
    settings = load_settings(None, environ={}, overrides={"store": f"chdb://{base / 'store'}"})
    store = StoreHandle(settings)
    spacing = 1000.0 / args.rate
    total = int(args.days * 86400 * args.rate) // STEPS * STEPS
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = now - dt.timedelta(milliseconds=total * spacing)
    have = store.run(lambda c: c.query("SELECT count() FROM llm_calls").result_rows[0][0])
    if have == 0:
        t = time.perf_counter()
        store.run(lambda c: calls(c, 0, total, start, spacing))
        store.run(lambda c: facts(c, total // STEPS, start, spacing))
        print(f"generated {total:,} calls and {total // STEPS:,} sessions in {time.perf_counter() - t:.0f} s")
    else:
        total = have
        start = now - dt.timedelta(milliseconds=total * spacing)
    print(f"llm_calls: {store.run(lambda c: c.query('SELECT count() FROM llm_calls').result_rows[0][0]):,}")

    evaluator = Evaluator(settings, store)
    t = time.perf_counter()
    evaluator.evaluate(now)
    print(f"first evaluation after a start (loads the state): {time.perf_counter() - t:.2f} s")
    per_round = int(30 * args.rate) // STEPS * STEPS
    times, first = [], total
    for k in range(1, args.rounds + 1):
        store.run(lambda c, f=first: calls(c, f, per_round, start, spacing, new_model="gpt-b"))
        first += per_round
        at = start + dt.timedelta(milliseconds=first * spacing)
        t = time.perf_counter()
        changes = evaluator.evaluate(at)
        times.append(time.perf_counter() - t)
        print(f"evaluation {k}: {times[-1]:.3f} s, {len(changes)} alert change(s), {evaluator.status()}")
    print(f"one evaluation, 30 s of traffic at {args.rate:g}/s over {args.days:g} days stored: "
          f"median {statistics.median(times):.3f} s, max {max(times):.3f} s")  # fmt: skip
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
