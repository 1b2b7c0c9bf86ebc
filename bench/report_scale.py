"""Benchmark (not a test) for issue 14: analytics at production scale, with session rows kept at ingest.

Generates 10 million LLM calls over the last 7 days inside the embedded store with INSERT ... SELECT (the
materialized views run as in production; a mix of sessions as the recorder would store them), then runs
the session backfill (`migrate`, migration 0012), checks that the report read from the stored rows equals
the query-time reference, and times what the issue sets targets for. Usage:

    python bench/report_scale.py [--calls 10000000] [--runs 3] [--keep DIR] [--no-upkeep]   # everything
    python bench/report_scale.py --upkeep-only [--frames 100000] [--batch 100]   # the recorder's extra cost

The data (see SESSIONS): 1 to 40 calls per session (0.95 M sessions for 10 M calls), 2 tool calls per LLM
call on average, 97 % of them answered (the last call of a session left waiting and half the malformed
calls get none); 4 models in two pairs that sessions switch within (10 % of sessions at half-way, 5 %
alternating: ties included); 30 % header session ids; 1 % of the calls after a session's first not placed
by the recorder (cold memory: link_key and the producing call unknown; 0.7 % of all calls, as a header id
still places a call); 1 % of sessions opening with a 500 retried byte for byte (the retry starts the
session); ~1 % of calls a 500 retried byte for byte, a few not retried, and 12 % of sessions ending on a
500; 5 % of gaps between calls over 10 minutes (late results), 1 % of sessions over 24 h; 3 % malformed
tool calls (4 kinds), 5 % tool errors, 7 % of sessions looping (one tool call repeated every step). Bodies
are not generated (the recorder stores them by default: they are most of a real store's size).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolwatch.analyzers import runner
from toolwatch.analyzers.params import report_params, session_params, sessions_params, timeseries_params
from toolwatch.analyzers.views import Context, narrow_session, view
from toolwatch.schemas.vocab import SQL_PARAMETERS
from toolwatch.store.client import open_client
from toolwatch.store.migrate import migrate

DATABASE = "toolwatch"
SPAN = dt.timedelta(days=7)
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "claude-haiku-4")  # pairs (0, 1), (2, 3): one upstream each
PERCENTILES = {"latency_p50_ms", "latency_p95_ms", "ttft_p50_ms"}
MATERIALIZE = {"enable_materialized_cte": 1}
TARGETS = {"cli": 2.0, "overview": 0.5, "sessions": 0.3, "session": 0.2}
ZERO = "toUUID('00000000-0000-0000-0000-000000000000')"


# -- the data ---------------------------------------------------------------------------------------------

# One row per session, with the per-call arrays (1-based: call j is [j + 1]) every table's rows derive from.
SESSIONS = """
SELECT
    number AS s,
    cityHash64(s, 1) AS h1,
    toUInt64(if(h1 % 100 < 85, 1 + intDiv(h1, 100) % 14, 15 + intDiv(h1, 100) % 26)) AS n,
    cityHash64(s, 2) % 100 < 30 AS header,
    cityHash64(s, 4) % 100 AS end_kind,
    cityHash64(s, 5) % 100 AS mix,
    toUInt8(cityHash64(s, 6) % 4) AS m0,
    cityHash64(s, 7) % 100 < 7 AND n >= 4 AS looping,
    NOT header AND cityHash64(s, 8) % 100 = 0 AND n >= 2 AS first_fail,
    cityHash64(s, 9) % 1000 < 12 AND n >= 2 AS long_session,
    toUInt64(first_fail) AS f,
    lower(leftPad(hex(cityHash64(s, 12)), 16, '0')) AS sid,
    lower(concat(leftPad(hex(cityHash64(s, 14)), 16, '0'), leftPad(hex(cityHash64(s, 15)), 16, '0'))) AS conv,
    lower(concat(leftPad(hex(cityHash64(s, 18)), 16, '0'), leftPad(hex(cityHash64(s, 19)), 16, '0'))) AS opening,
    if(header, concat('sess-', sid), '') AS session_id,
    ['coder', 'researcher', 'support', ''][cityHash64(s, 10) % 4 + 1] AS agent,
    if(cityHash64(s, 13) % 5 = 0, '', concat('user-', toString(cityHash64(s, 13) % 5000))) AS user_id,
    map('team', ['core', 'infra', 'web'][cityHash64(s, 17) % 3 + 1],
        'env', if(cityHash64(s, 17) % 10 = 0, 'staging', 'prod')) AS properties,
    concat('fp', toString(cityHash64(s, 16) % 50)) AS key_fingerprint,
    -- a 500 that is sent again byte for byte as the next call (the first call of 1 % of sessions)
    arrayMap(j -> (j = 0 AND first_fail)
        OR (j % 2 = 0 AND j > 0 AND j + 1 < n AND cityHash64(s, j, 20) % 40 = 0), range(n)) AS att,
    arrayMap(j -> j > 0 AND att[j], range(n)) AS rty,
    -- a 500 not retried: a few mid-session, and the last call of 12 % of sessions
    arrayMap(j -> NOT rty[j + 1] AND ((j % 2 = 1 AND j >= 3 AND j + 1 < n AND cityHash64(s, j, 21) % 200 = 0)
        OR (j + 1 = n AND n >= 2 AND end_kind >= 88)), range(n)) AS f500,
    arrayMap(j -> att[j + 1] OR f500[j + 1], range(n)) AS e500,
    -- tool calls: none after a 500 or in the final answer (70 % of sessions), else 1 to 3
    arrayMap(j -> toUInt32(multiIf(e500[j + 1], 0, j + 1 = n AND end_kind < 70, 0, j + 1 = n,
        1 + cityHash64(s, j, 23) % 3, [1, 2, 2, 3, 3][cityHash64(s, j, 23) % 5 + 1])), range(n)) AS tcs,
    -- milliseconds from the session's start: 1-3 s before a retry, 5 % over 10 minutes, one gap of a day
    arrayCumSum(arrayMap(j -> toUInt64(multiIf(j = 0, 0, rty[j + 1], 1000 + cityHash64(s, j, 24) % 2000,
        long_session AND j = intDiv(n, 2), 86400000 + cityHash64(s, j, 24) % 21600000,
        cityHash64(s, j, 25) % 100 < 5, 601000 + cityHash64(s, j, 24) % 1200000,
        2000 + cityHash64(s, j, 24) % 58000)), range(n))) AS offs,
    {start:DateTime64(3)} + toIntervalMillisecond(s * {spacing:UInt64} + cityHash64(s, 11) % {spacing:UInt64}) AS t0
FROM numbers({sessions:UInt64})
"""


def kind(j: str, i: str) -> str:
    """The malformed kind of tool call i of call j ('' = well formed): 3 %."""
    h = f"cityHash64(s, {j}, {i}, 50) % 1000"
    return (
        f"multiIf({h} < 12, 'invalid_json', {h} < 20, 'schema_violation', {h} < 25, 'unknown_tool', "
        f"{h} < 30, 'truncated', '')"
    )


def call_uuid(j: str) -> str:
    return f"toUUID(concat('00000000-0000-4000-8000-', leftPad(toString(s * 64 + {j}), 12, '0')))"


def tool_call_id(j: str, i: str) -> str:
    return f"concat('call_', sid, '_', toString({j}), '_', toString({i}))"


# One row per LLM call, with what the recorder fills at ingest.
CALLS = f"""
SELECT
    *,
    j,
    t0 + toIntervalMillisecond(offs[j + 1]) AS ts,
    e500[j + 1] AS failed_http,
    rty[j + 1] AS retry,
    tcs[j + 1] AS tc,
    if(retry, toUInt64(j - 1), j) AS sidx,
    toUInt8(multiIf(mix < 10, if(sidx < intDiv(n, 2), m0, bitXor(m0, 1)),
                    mix < 15, if(sidx % 2 = 0, m0, bitXor(m0, 1)), m0)) AS mi,
    {list(MODELS)}[mi + 1] AS model,
    mi < 2 AS oa,
    if(oa, 'openai', 'anthropic') AS upstream,
    j > f AND cityHash64(s, j, 22) % 100 = 0 AS unplaced,
    {call_uuid("j")} AS call_id,
    cityHash64(s, j, 31) AS hc
FROM ({SESSIONS})
ARRAY JOIN range(n) AS j
WHERE ts < {{end:DateTime64(3)}}
"""

LLM_CALLS = f"""
INSERT INTO llm_calls (call_id, ts, upstream, api, endpoint, method, path, model_requested, model_returned, model,
    stream, status, outcome, error, parse_status, finish_reason, response_id, input_tokens, cache_read_tokens,
    output_tokens, latency_ms, ttfb_ms, request_bytes, response_bytes, declared_tools, tool_schemas, tool_call_count,
    tool_result_count, prior_tool_call_ids, message_count, text_chars, session_id, agent, user_id, properties,
    request_id, conv_key, opening_key, first_prior_tool_call_id, malformed_count, malformed_kinds, tool_sigs,
    link_key, key_fingerprint, request_hash)
SELECT
    call_id, ts, upstream, upstream, if(oa, 'chat_completions', 'messages'), 'POST',
    if(oa, '/v1/chat/completions', '/v1/messages'), model, if(failed_http, NULL, model), model, hc % 2 = 0,
    if(failed_http, 500, 200), if(failed_http, 'http_error', 'ok'), if(failed_http, 'upstream overloaded', NULL),
    'ok', if(failed_http, NULL, multiIf(tc = 0, if(oa, 'stop', 'end_turn'), if(oa, 'tool_calls', 'tool_use'))),
    if(failed_http, NULL, concat('resp_', toString(hc))), if(failed_http, NULL, 1500 + j * 600 + hc % 700),
    if(failed_http, NULL, j * 400), if(failed_http, NULL, 30 + hc % 400),
    toFloat64(if(failed_http, 200 + hc % 2000, 600 + hc % 6000)),
    if(hc % 2 = 0 AND NOT failed_http, toFloat64(200 + hc % 900), NULL), 3000 + j * 1800,
    if(failed_http, 120, 400 + tc * 250), ['read_file', 'write_file', 'run_tests', 'search', 'list_dir'],
    arrayMap(t -> concat('{{"type":"object","properties":{{"', t, '":{{"type":"string"}}}}}}'),
             ['path', 'path', 'target', 'query', 'path']),
    tc, length(prior), prior, 2 + 2 * j, if(tc = 0 AND NOT failed_http, 200 + hc % 2000, 0),
    session_id, agent, user_id, properties, concat('req_', toString(hc)),
    if(j < f, '', conv), opening, if(j > f, {tool_call_id("f", "0")}, ''), length(kinds), kinds,
    arrayMap(i -> if(looping AND i = 0, cityHash64(s, 40), cityHash64(s, j, i, 41)), range(tc)),
    if(j > f AND NOT unplaced, conv, ''), key_fingerprint, cityHash64(s, sidx, 30)
FROM
(
    SELECT
        *,
        arrayFilter(x -> x != '', arrayMap(i -> {kind("j", "i")}, range(tc))) AS kinds,
        arrayFlatten(arrayMap(q -> arrayMap(i -> {tool_call_id("q", "i")}, range(tcs[q + 1])), range(f, j))) AS prior
    FROM ({CALLS})
)
"""

TOOL_CALLS = f"""
INSERT INTO tool_calls (tool_call_uid, call_id, ts, upstream, model, session_id, agent, call_index, tool_call_id,
    name, raw_arguments, arguments, malformed_kind, malformed_detail, conv_key)
SELECT
    toUUID(concat('00000000-0000-4000-9000-', leftPad(toString((s * 64 + j) * 4 + i), 12, '0'))),
    call_id, ts, upstream, model, session_id, agent, i, {tool_call_id("j", "i")},
    multiIf(mk = 'unknown_tool', 'do_magic', looping AND i = 0, 'read_file',
            ['read_file', 'write_file', 'run_tests', 'search', 'list_dir'][cityHash64(s, j, i, 42) % 5 + 1]),
    multiIf(mk = 'invalid_json', '{{"path": ', mk = 'truncated', '{{"path": "src/ma',
            looping AND i = 0, '{{"path": "src/main.py"}}', concat('{{"path": "', file, '"}}')),
    multiIf(mk IN ('invalid_json', 'truncated'), NULL, looping AND i = 0, '{{"path":"src/main.py"}}',
            concat('{{"path":"', file, '"}}')),
    mk, if(mk = '', '', concat('bench: ', mk)), if(j < f, '', conv)
FROM
(
    SELECT *, i, {kind("j", "i")} AS mk, concat('src/f', toString(cityHash64(s, j, i, 41) % 100000), '.py') AS file
    FROM ({CALLS})
    ARRAY JOIN range(tc) AS i
)
"""

# The results of call j - 1's tool calls, carried by call j (the first request to resend them); half of the
# malformed calls get none. The producing call is unknown when the carrying call was not placed.
TOOL_RESULTS = f"""
INSERT INTO tool_results (result_uid, call_id, ts, upstream, session_id, agent, tool_call_id, content, content_bytes,
    truncated, is_error, error_rule, classified_at, producer_call_id)
SELECT
    toUUID(concat('00000000-0000-4000-a000-', leftPad(toString((s * 64 + q) * 4 + i), 12, '0'))),
    call_id, ts, upstream, session_id, agent, {tool_call_id("q", "i")}, content, length(content), false,
    if(oa, NULL, err), if(err, if(oa, 'error_prefix', 'is_error'), ''), ts,
    if(unplaced, {ZERO}, {call_uuid("q")})
FROM
(
    SELECT *, i, toUInt64(j - 1) AS q, cityHash64(s, q, i, 70) % 20 = 0 AS err,
           if(err, 'Error: tool failed: file not found',
              concat('ok: ', toString(cityHash64(s, q, i, 71)), ' lines read')) AS content
    FROM ({CALLS})
    ARRAY JOIN range(tcs[j]) AS i
    WHERE j > 0 AND NOT ({kind("q", "i")} != '' AND cityHash64(s, q, i, 51) % 2 = 0)
)
"""


def session_count(client: Any, calls: int) -> int:
    """How many sessions make about ``calls`` LLM calls (the mean calls per session, counted)."""
    probe = 100_000
    per = client.query(
        "SELECT avg(1 + intDiv(h, 100) % 14 * (h % 100 < 85) + (14 + intDiv(h, 100) % 26) * (h % 100 >= 85))"
        " FROM (SELECT cityHash64(number, 1) AS h FROM numbers({n:UInt64}))",
        parameters={"n": probe},
    ).result_rows[0][0]
    return max(1, round(calls / per))


def generate(client: Any, calls: int, end: dt.datetime) -> None:
    sessions = session_count(client, calls)
    start = end - SPAN
    spacing = int(SPAN.total_seconds() * 1000) // sessions
    p = {"start": start, "end": end, "sessions": sessions, "spacing": spacing}
    settings = {"max_insert_threads": 2, "max_block_size": 16384}
    for table, statement in (("llm_calls", LLM_CALLS), ("tool_calls", TOOL_CALLS), ("tool_results", TOOL_RESULTS)):
        t = time.perf_counter()
        client.command(statement, parameters=p, settings=settings)
        print(f"  {table}: {time.perf_counter() - t:.1f}s", flush=True)


# -- checks ---------------------------------------------------------------------------------------------


def run(client: Any, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return runner.run(client, name, **params)


def report_differences(got: list[dict[str, Any]], want: list[dict[str, Any]], label: str) -> list[str]:
    found = []
    by_model = {r["model"]: r for r in want}
    if sorted(by_model) != sorted(r["model"] for r in got):
        found.append(f"{label}: models {sorted(r['model'] for r in got)} != reference {sorted(by_model)}")
    for a in got:
        b = by_model.get(a["model"])
        if b is None:
            continue
        for k in sorted((set(a) & set(b)) - PERCENTILES):
            if a[k] != b[k]:
                found.append(f"{label} {a['model']}.{k}: stored {a[k]!r} != reference {b[k]!r}")
    return found


def with_reference_timeseries() -> str:
    """The timeseries body over the query-time composition (every session recomputed): its reference (the
    runner's own when it has one)."""
    runner.CTES.setdefault("timeseries_reference", runner.REFERENCE)  # the bench's own entry, in this process
    runner.BODIES.setdefault("timeseries_reference", "timeseries")
    return "timeseries_reference"


def rows_differ(got: list[dict[str, Any]], want: list[dict[str, Any]], skip: set[str]) -> list[str]:
    def key(r: dict[str, Any]) -> str:
        return repr(sorted((k, v) for k, v in r.items() if k not in skip))

    a, b = sorted(map(key, got)), sorted(map(key, want))
    if a == b:
        return []
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    return [
        f"{len(got)} rows vs {len(want)}; first only in stored: {only_a[:1]}; first only in reference: {only_b[:1]}"
    ]


def check(client: Any, windows: dict[str, dict[str, Any]]) -> tuple[list[str], dict[str, list[dict[str, Any]]]]:
    """Differences between the report from stored rows and its query-time reference; and the references."""
    found, references = [], {}
    for label, params in windows.items():
        references[label] = run(client, "report_reference", params)
        found += report_differences(run(client, "report", params), references[label], label)
        [src] = run(client, "session_sources", params)
        print(f"  session_sources {label}: stored {src['stored']:,}, recomputed {src['recomputed']:,}", flush=True)
    return found, references


def secondary_checks(client: Any, page: dict[str, Any], one: dict[str, Any], series: dict[str, Any]) -> list[str]:
    found = []
    got, want = run(client, "sessions", page), run(client, "sessions_reference", page)
    if got != want:
        found.append(
            f"sessions page (model {page['model']}, outcome {page['outcome']}): {rows_differ(got, want, set())}"
        )
    got, want = run(client, "session", one), run(client, "session_reference", one)
    if got != want:
        found.append(f"session {one['session']}: {rows_differ(got, want, set())}")
    skip = {"latency_p50_ms", "latency_p95_ms"}
    got, want = run(client, "timeseries", series), run(client, with_reference_timeseries(), series)
    if diff := rows_differ(got, want, skip):
        found.append(f"timeseries 24h vs the same body over the reference composition: {diff}")
    return found


# -- timing ---------------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], runs: int, warm: bool = True) -> list[float]:
    if warm:
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def cli_times(store: str, runs: int) -> tuple[list[float], str]:
    cmd = [sys.executable, "-m", "toolwatch", "report", "--since", "7d", "--store", store]
    times, out = [], ""
    for n in range(runs + 1):
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
        elapsed = time.perf_counter() - t
        if done.returncode != 0:
            raise SystemExit(f"toolwatch report failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        out = done.stdout
        if n:
            times.append(elapsed)
    return times, out


def wait_for_merges(client: Any, limit_s: float = 600) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        busy = client.query("SELECT count() FROM system.merges WHERE database = currentDatabase()").result_rows[0][0]
        if not busy:
            return
        time.sleep(2)


def table_sizes(client: Any) -> list[tuple[str, int, int, int]]:
    return client.query(
        "SELECT table, sum(rows), sum(bytes_on_disk), count() FROM system.parts"
        " WHERE database = currentDatabase() AND active GROUP BY table ORDER BY sum(bytes_on_disk) DESC"
    ).result_rows


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


# -- what a missed target spends its time on ------------------------------------------------------------


def explain(client: Any, name: str, params: dict[str, Any]) -> list[str]:
    """EXPLAIN indexes = 1 of the composed SQL, summarised: each table read, and per index its condition and
    the parts and granules it kept of those there."""
    text = client.query(
        "EXPLAIN indexes = 1 " + runner.composed(name, True), parameters={**SQL_PARAMETERS, **params},
        settings=MATERIALIZE,
    ).result_rows  # fmt: skip
    reads: list[list[str]] = []
    index = ""
    for (line,) in text:
        s = line.lstrip(" │└├─")
        if s.startswith("ReadFromMemoryStorage"):  # a materialized CTE
            index = "-"
        elif s.startswith("ReadFrom"):
            reads.append([s.removeprefix("ReadFromMergeTree").strip(" ()")[:60]])
            index = ""
        elif not reads:
            continue
        elif s.startswith("Parts:") and "|" in s and index == "":
            reads[-1].append(s.replace("Parts: ", "").replace(" | Granules: ", " parts, ") + " granules")
        elif s in ("MinMax", "Partition", "PrimaryKey") or s.startswith(("Skip", "Name:")):
            index = s
        elif s.startswith("Condition:") and index:
            reads[-1].append(f"{index} {s.removeprefix('Condition: ')[:110]}")
        elif s.startswith("Granules:") and "/" in s and index:
            reads[-1][-1] += f" -> granules {s.removeprefix('Granules: ')}"
        elif s.startswith(("Expression", "Filter", "Aggregating", "Join", "Sorting", "Window", "Union")):
            index = "-"  # past this read's index lines
    return [": ".join([r[0], "; ".join(r[1:])]) for r in reads]


def cte_times(
    client: Any, name: str, params: dict[str, Any], cache: dict[str, tuple[float, int]]
) -> list[tuple[str, float, int]]:
    """Each CTE of the composition run alone (with the CTEs before it), then each of the body's own CTEs; a CTE
    already timed with the same parameters (another analyzer's) is not run again."""
    ctes = runner.CTES.get(name, ())
    # the runner's own composition, piece by piece (its private helpers: this is a bench)
    defs = [f"{c.name} AS MATERIALIZED (\n{runner._cte_sql(c)}\n)" for c in ctes]
    body = runner._strip_comments(runner.sql(runner.BODIES.get(name, name)))
    inner: list[tuple[str, str]] = []
    if body[:4].upper() == "WITH":
        head, _, _ = body.rpartition("\nSELECT")
        inner = [(n, head[4:].strip()) for n in re.findall(r"^    (\w+) AS$", head, re.M)]
    p = {**SQL_PARAMETERS, **params}
    queries = [(c.name, ",\n".join(defs[: k + 1]), c.name) for k, c in enumerate(ctes)]
    queries += [(f"{name}.{n}", ",\n".join([*defs, head]), n) for n, head in inner]
    out = []
    for label, with_, table in queries:
        sql = f"WITH {with_}\nSELECT count() FROM {table}"
        key = repr((sql, sorted((k, str(v)) for k, v in params.items())))
        if key not in cache:
            t = time.perf_counter()
            n = client.query(sql, parameters=p, settings=MATERIALIZE).result_rows[0][0]
            cache[key] = (time.perf_counter() - t, n)
        out.append((label, *cache[key]))
    return out


# -- the recorder's session upkeep ----------------------------------------------------------------------


def mix_frames(count: int, start: dt.datetime) -> list[bytes]:
    """``count`` spool frames of sessions from tests/analyzers/session_mix.py (the test's mix, sized up)."""
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)  # the test helpers import as tests.analyzers.*
    from tests.analyzers.session_mix import MODELS as MIX_MODELS
    from tests.analyzers.session_mix import SessionSpec, Step, frames_of

    rnd = random.Random(14)
    kinds = ["ok"] * 85 + ["malformed"] * 3 + ["tool_error"] * 5 + ["retried_500"] * 2 + ["loop"] * 5
    specs, expected = [], 0
    span = count / 30  # about 30 exchanges a second
    while expected < count:
        steps = tuple(
            Step(rnd.choice(kinds), rnd.choice(MIX_MODELS[:2]), rnd.choice((1.0, 5.0, 30.0, 700.0)))
            for _ in range(rnd.randint(1, 19))
        )
        first = rnd.random() < 0.01
        specs.append(SessionSpec(round(rnd.uniform(0, span), 3), steps, rnd.random() < 0.3, rnd.random() < 0.7, first))
        expected += len(steps) + sum(s.kind == "retried_500" for s in steps) + first
    return frames_of(specs, start)[:count]


def deep_size(obj: Any, seen: set[int] | None = None) -> int:
    """Bytes of ``obj`` and everything it holds that was not counted yet."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set | frozenset):
        size += sum(deep_size(v, seen) for v in obj)
    elif hasattr(obj, "__dict__"):
        size += deep_size(vars(obj), seen)
    return size


def cpu_timed(fn: Callable[..., Any], into: dict[str, float], key: str, only: str = "") -> Callable[..., Any]:
    """``fn``, adding the CPU time of each call to ``into[key]`` (only when its first argument is ``only``)."""

    def timed_call(*args: Any, **kwargs: Any) -> Any:
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            if not only or (args and args[0] == only):
                into[key] += time.process_time() - t

    return timed_call


def upkeep(store_dir: Path, frames: int, batch: int) -> dict[str, float]:
    """Record ``frames`` exchanges twice, with the session upkeep on and off; CPU per exchange. The spool gets
    ``batch`` frames at a time and the recorder writes each lot as one batch (100: a second's batch at 100
    exchanges a second)."""
    from toolwatch.recorder.build import BuildOptions
    from toolwatch.recorder.loop import Recorder
    from toolwatch.schemas.settings import load_settings
    from toolwatch.spool.reader import SpoolReader
    from toolwatch.store.handle import StoreHandle
    from toolwatch.store.writer import ClickHouseSink

    class TimedSink(ClickHouseSink):
        fold_cpu = 0.0
        fold_wall = 0.0

        def fold_sessions(self, batch: Any) -> None:
            t, w = time.process_time(), time.perf_counter()
            super().fold_sessions(batch)
            self.fold_cpu += time.process_time() - t
            self.fold_wall += time.perf_counter() - w

    class NoUpkeepSink(ClickHouseSink):
        fold_sessions = None  # type: ignore[assignment]

    t = time.perf_counter()
    data = mix_frames(frames, dt.datetime.now(dt.UTC) - dt.timedelta(hours=12))
    print(f"  {len(data):,} frames built in {time.perf_counter() - t:.1f}s", flush=True)
    result: dict[str, float] = {"frames": len(data), "batch": batch}
    for mode, sink_class in (("off", NoUpkeepSink), ("on", TimedSink)):
        work = Path(tempfile.mkdtemp(prefix=f"tw-upkeep-{mode}-"))
        spool = work / "spool"
        spool.mkdir()
        db = f"bench_upkeep_{mode}_{uuid.uuid4().hex[:6]}"
        settings = load_settings(None, environ={}, overrides={"store": f"chdb://{store_dir}", "database": db})
        handle = StoreHandle(settings)
        client = handle.client()  # open and migrate before the clock starts
        sink = sink_class(handle)
        parts = {"read_back": 0.0, "insert": 0.0}
        if mode == "on":  # where the fold's time goes: reading rows back, inserting them, the rest is Python
            sink.sessions._load = cpu_timed(sink.sessions._load, parts, "read_back")  # type: ignore[method-assign]
            if hasattr(sink.sessions, "insert"):  # the upkeep's own insert function
                sink.sessions.insert = cpu_timed(sink.sessions.insert, parts, "insert")
            else:
                client.insert = cpu_timed(client.insert, parts, "insert", only="sessions")  # type: ignore[method-assign]
        recorder = Recorder(SpoolReader(spool), sink, options=BuildOptions())
        gc.collect()
        cpu, wall = time.process_time(), time.perf_counter()
        for seq, at in enumerate(range(0, len(data), batch), 1):  # a sealed segment per lot
            (spool / f"w0-{seq:012d}.seg").write_bytes(b"".join(data[at : at + batch]))
            while recorder.step():
                pass
            recorder.flush()
        result[f"{mode}_cpu_us"] = (time.process_time() - cpu) / len(data) * 1e6
        result[f"{mode}_wall_s"] = time.perf_counter() - wall
        stored = handle.run(lambda c: c.query("SELECT count() FROM llm_calls").result_rows[0][0])
        if mode == "on":
            assert isinstance(sink, TimedSink)
            result["fold_cpu_us"] = sink.fold_cpu / len(data) * 1e6
            result["fold_wall_us"] = sink.fold_wall / len(data) * 1e6
            result["read_back_us"] = parts["read_back"] / len(data) * 1e6
            result["insert_us"] = parts["insert"] / len(data) * 1e6
            result["rows_cached"] = len(sink.sessions.rows)
            result["producers_cached"] = len(sink.sessions.producers)
            seen: set[int] = set()
            result["rows_mb"] = deep_size(sink.sessions.rows, seen) / 1e6
            result["producers_mb"] = deep_size(sink.sessions.producers, seen) / 1e6  # ids shared with rows: once
            result["steps_cached"] = sum(len(r.steps) + len(r.results) for r in sink.sessions.rows.values())
            result["capacity"] = sink.sessions.capacity
            result["max_events"] = getattr(sink.sessions, "max_events", 0)  # bounds steps and results, and ids
            result["sessions"] = handle.run(lambda c: c.query("SELECT count() FROM sessions FINAL").result_rows[0][0])
        print(f"  upkeep {mode}: {stored:,} calls stored in {result[f'{mode}_wall_s']:.1f}s", flush=True)
        handle.run(lambda c, db=db: c.command(f"DROP DATABASE IF EXISTS {db} SYNC"))
        handle.close()
        shutil.rmtree(work, ignore_errors=True)
    return result


def print_upkeep(u: dict[str, float]) -> None:
    per_row = u["rows_mb"] * 1e6 / max(1, u["rows_cached"])
    per_event = u["rows_mb"] * 1e6 / max(1, u["steps_cached"])
    per_id = u["producers_mb"] * 1e6 / max(1, u["producers_cached"])
    print(
        f"\nSession upkeep in the recorder, {int(u['frames']):,} frames ({int(u['sessions']):,} sessions),"
        f" batches of {int(u['batch'])}:"
    )
    print("| | µs CPU per exchange | target |\n|---|---|---|")
    print(f"| fold (`ClickHouseSink.fold_sessions`, measured around it) | {u['fold_cpu_us']:.1f} | ≤ 10 |")
    print(f"| of which reading rows back (`sessions FINAL WHERE skey IN ...`) | {u['read_back_us']:.1f} | |")
    print(f"| of which inserting the new versions | {u['insert_us']:.1f} | |")
    print(f"| whole recorder, upkeep on | {u['on_cpu_us']:.1f} | |")
    print(f"| whole recorder, upkeep off | {u['off_cpu_us']:.1f} | |")
    print(f"| difference on - off | {u['on_cpu_us'] - u['off_cpu_us']:.1f} | ≤ 10 |")
    if u["max_events"]:
        events, ids = u["max_events"], u["max_events"]
        bound = f"{int(events):,} steps and results, {int(ids):,} ids"
    else:
        events, ids = u["capacity"] * u["steps_cached"] / max(1, u["rows_cached"]), 4 * u["capacity"]
        bound = f"{int(u['capacity']):,} rows of this size, {int(ids):,} ids"
    print(
        f"fold wall time {u['fold_wall_us']:.1f} µs/exchange. Cache after the run (deep size):"
        f" {int(u['rows_cached']):,} rows holding {int(u['steps_cached']):,} steps and results, {u['rows_mb']:.1f} MB"
        f" ({per_row / 1e3:.1f} kB a row, {per_event:.0f} B a step or result); {int(u['producers_cached']):,}"
        f" producer ids, {u['producers_mb']:.1f} MB ({per_id:.0f} B each). At the cache's bound ({bound}):"
        f" {(per_event * events + per_id * ids) / 1e6:.0f} MB (target ≤ 100 MB)"
    )


# -- main -----------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=10_000_000, help="LLM calls over the last 7 days")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per query, after one warm-up")
    ap.add_argument("--keep", help="keep (or reuse) the generated store in this directory")
    ap.add_argument("--frames", type=int, default=100_000, help="spool frames for the upkeep measurement")
    ap.add_argument("--batch", type=int, default=100, help="frames per recorder batch in the upkeep measurement")
    ap.add_argument("--upkeep-only", action="store_true", help="only measure the recorder's session upkeep")
    ap.add_argument("--no-upkeep", action="store_true", help="skip the upkeep measurement")
    args = ap.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tw-scale-"))
    store_dir = base / "store"
    try:
        if args.upkeep_only:
            print_upkeep(upkeep(store_dir, args.frames, args.batch))
            return 0
        status = scale(args, store_dir)
        if not args.no_upkeep:
            print_upkeep(upkeep(store_dir, args.frames, args.batch))
        return status
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def scale(args: argparse.Namespace, store_dir: Path) -> int:
    store = f"chdb://{store_dir}"
    client = open_client(store, DATABASE)
    migrate(client, upto=11)
    have = client.query("SELECT count() FROM llm_calls").result_rows[0][0]
    gen_s = backfill_s = None
    if not have:
        print(f"generating about {args.calls:,} LLM calls over 7 days in {store_dir}", flush=True)
        t = time.perf_counter()
        generate(client, args.calls, dt.datetime.now(dt.UTC).replace(microsecond=0))
        gen_s = time.perf_counter() - t
    t = time.perf_counter()
    if migrate(client):
        backfill_s = time.perf_counter() - t
    wait_for_merges(client)
    counts = client.query(
        "SELECT (SELECT count() FROM llm_calls), (SELECT count() FROM tool_calls), (SELECT count() FROM tool_results),"
        " (SELECT count() FROM sessions FINAL), (SELECT uniqExact(session_id) FROM llm_calls WHERE session_id != '')"
    ).result_rows[0]
    calls = counts[0]
    print(
        f"llm_calls {counts[0]:,}, tool_calls {counts[1]:,}, tool_results {counts[2]:,}, session rows {counts[3]:,}"
        f" ({counts[4]:,} header ids)"
    )
    if gen_s is not None:
        print(f"generation {gen_s:.1f}s")
    if backfill_s is not None:
        print(f"migrate (0012 the session rows' backfill, 0013 the figures computed at write) {backfill_s:.1f}s")
    sizes = table_sizes(client)
    size = sum(nbytes for _, _, nbytes, _ in sizes)
    print(
        f"store on disk {size / 1e9:.2f} GB in active parts: {size / 1e6 / (calls / 1e6):.0f} MB per million LLM"
        f" calls ({du(store_dir) / 1e9:.2f} GB in the directory, with parts a merge or mutation left for removal)"
    )
    for table, rows, nbytes, parts in sizes:
        if rows:
            print(f"  {table}: {rows:,} rows, {nbytes / 1e6:.0f} MB, {parts} parts")

    week, day = report_params(since="7d"), report_params(since="24h")
    print("checking: report equals report_reference (7d, 24h; percentiles excepted)", flush=True)
    fatal, references = check(client, {"7d": week, "24h": day})
    mix = mix_figures(client, references["7d"])
    day_window = {"since": day["since"], "until": day["until"]}
    series = {**timeseries_params(since="24h"), **day_window}
    page = {**sessions_params(model=mix["model"], outcome="success", last="50"), **day_window}
    one = session_params(session=mix["session"])
    if fatal:
        print("DIFFERENCES between the report from stored rows and the query-time reference:")
        print("\n".join(f"  {d}" for d in fatal))
        client.close()
        return 1
    print("  equal")
    others = secondary_checks(client, page, one, series)
    for d in others:
        print(f"  DIFFERENCE {d}")

    ctx = Context()
    load_before = os.getloadavg()[0]
    measure = {
        "report --since 7d, in-process": lambda: run(client, "report", report_params(since="7d")),
        "overview": lambda: (
            view(client, "report", report_params(since="24h"), ctx),
            view(client, "timeseries", timeseries_params(since="24h"), ctx),
        ),
        "sessions": lambda: run(client, "sessions", page),
        "session": lambda: view(client, "session", one, ctx),  # narrowed to the row's time span, as the API does
    }
    times = {k: timed(fn, args.runs) for k, fn in measure.items()}
    refs = {
        "report_reference 7d": lambda: run(client, "report_reference", report_params(since="7d")),
        "report_reference 24h + timeseries_reference 24h": lambda: (
            run(client, "report_reference", report_params(since="24h")),
            run(client, with_reference_timeseries(), timeseries_params(since="24h")),
        ),
        "sessions_reference page": lambda: run(client, "sessions_reference", page),
        "session_reference": lambda: run(client, "session_reference", one),
    }
    ref_times = {k: timed(fn, 1, warm=False) for k, fn in refs.items()}
    client.close()
    cli, out = cli_times(store, args.runs)
    load_after = os.getloadavg()[0]
    print(out)
    rows = [
        ("`toolwatch report --since 7d`, whole command", cli, TARGETS["cli"]),
        ("`report --since 7d`, in-process", times["report --since 7d, in-process"], None),
        ("dashboard overview 24 h (report + timeseries views)", times["overview"], TARGETS["overview"]),
        (f"sessions page: 24 h, model {mix['model']}, outcome success, 50", times["sessions"], TARGETS["sessions"]),
        (f"one session's timeline ({mix['steps']} steps, 7 d)", times["session"], TARGETS["session"]),
    ]
    print(
        f"\n{calls:,} LLM calls, {os.cpu_count()} cores (load average {load_before:.1f} before the timings,"
        f" {load_after:.1f} after); median of {args.runs} runs after a warm-up (seconds)\n"
    )
    print("| query | median | runs | target | |\n|---|---|---|---|---|")
    missed = []
    for label, ts, target in rows:
        med = statistics.median(ts)
        verdict = "" if target is None else ("met" if med < target else "**missed**")
        if target is not None and med >= target:
            missed.append(label)
        runs = ", ".join(f"{x:.2f}" for x in ts)
        print(f"| {label} | {med:.2f} | {runs} | {'' if target is None else f'< {target:g}'} | {verdict} |")
    for label, ts in ref_times.items():
        print(f"| {label} (query-time reference, once) | {ts[0]:.2f} | | | |")

    if missed:
        client = open_client(store, DATABASE)
        cache: dict[str, tuple[float, int]] = {}
        why = {
            "report": ("report", week),
            "report 24h": ("report", day),
            "timeseries 24h": ("timeseries", series),
            "sessions": ("sessions", page),
            "session": ("session", narrow_session(client, one)),
        }
        wanted = {"whole": ["report"], "overview": ["report 24h", "timeseries 24h"], "sessions": ["sessions"]}
        for label in missed:
            keys = next((v for k, v in wanted.items() if k in label), ["session"])
            for key in keys:
                name, params = why[key]
                print(f"\n### {label}: {key}\nEXPLAIN indexes = 1 (tables read: conditions, parts, granules):")
                for line in explain(client, name, params):
                    print(f"  {line}")
                print("each CTE alone, with those before it (seconds, rows):")
                for cte, secs, n in cte_times(client, name, params, cache):
                    print(f"  {cte}: {secs:.2f}s, {n:,} rows")
        client.close()
    return 1 if others else 0


def mix_figures(client: Any, report: list[dict[str, Any]]) -> dict[str, Any]:
    """What the mix came out as; the model for the sessions page (the busiest) and a session for the timeline."""
    q = client.query(
        f"""
        SELECT count(), countIf(length(models) > 1), countIf(length(models) > 1 AND arrayCount(c -> c = arrayMax(per),
               per) > 1), countIf(first_ts < last_ts - INTERVAL 1 DAY), countIf(startsWith(skey, 'h:')),
               (SELECT countIf(multiIf(session_id != '', 0, link_key != '', 0, previous_response_id != ''
                       OR first_prior_tool_call_id != '' OR conv_key = '', 1, 0)) / count() FROM llm_calls),
               (SELECT countIf(status >= 500 AND conv_key = '' AND opening_key != '') FROM llm_calls),
               (SELECT avg(r.ts > c.ts + INTERVAL 10 MINUTE) FROM
                   (SELECT ts, producer_call_id FROM tool_results WHERE producer_call_id != {ZERO}
                    AND cityHash64(result_uid) % 50 = 0) AS r
                   INNER JOIN (SELECT call_id, ts FROM llm_calls) AS c ON r.producer_call_id = c.call_id)
        FROM (SELECT *, arrayDistinct(step_model) AS models, arrayMap(m -> countEqual(step_model, m), models) AS per
              FROM sessions FINAL)
        """
    ).result_rows[0]
    n = max(1, q[0])
    print(
        f"session rows {q[0]:,}: multi-model {q[1] / n:.1%} (tied {q[2] / n:.1%}), over 24 h {q[3] / n:.1%}, header"
        f" ids {q[4] / n:.1%}; calls not placed {q[5]:.1%}; failed first turns {q[6]:,}; results over 10 min late"
        f" {q[7]:.1%} (2 % sample)"
    )
    closed = sum(r["sessions"] - r["open_sessions"] for r in report)
    ok = sum(r["successful_sessions"] for r in report)
    loops = sum(r["loop_sessions"] for r in report)
    total = sum(r["sessions"] for r in report)
    print(
        f"reference 7d: {total:,} sessions, success {ok / max(1, closed):.1%} of ended,"
        f" loops {loops / max(1, total):.1%}"
    )
    [(skey, steps)] = client.query(
        "SELECT skey, length(step_call) FROM sessions FINAL WHERE length(step_call) BETWEEN 10 AND 20"
        " AND first_ts > now() - INTERVAL 1 DAY AND last_ts < now() - INTERVAL 1 HOUR AND unplaced = 0"
        " ORDER BY cityHash64(skey) LIMIT 1"
    ).result_rows
    return {"model": report[0]["model"], "session": skey, "steps": steps}


if __name__ == "__main__":
    raise SystemExit(main())
