"""Incremental figures equal query-time figures.

The recorder keeps one row per session at ingest (``store/sessions.py``); the report, the sessions list and
a session's timeline read those rows where they can and recompute the rest from the raw rows. Here a mix of
sessions (``session_mix.py``, drawn by Hypothesis) is recorded in two halves, by two recorders (the second
starts with its memory empty), and every analyzer is compared with its query-time reference
(``*_reference``: every session recomputed from every step), percentiles excepted:

- with merges stopped on the session table (every version still there) and after ``OPTIMIZE FINAL``;
- over windows that cut sessions, an ``until`` before late results, an idle time exactly the abandon timeout;
- after a reclassify that turns results into errors.

Most sessions must come from stored rows, and a corrupted row must make the comparison fail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.analyzers.session_mix import SessionSpec, frames_of, sessions
from tests.harness import make_settings
from toolwatch.analyzers import runner
from toolwatch.analyzers.params import (
    DEFAULT_ABANDON_S,
    report_params,
    session_params,
    sessions_params,
    timeseries_params,
)
from toolwatch.analyzers.views import narrow_session
from toolwatch.recorder.build import BuildOptions
from toolwatch.recorder.loop import Recorder
from toolwatch.recorder.outcomes import Classifier
from toolwatch.recorder.reclassify import reclassify
from toolwatch.spool.reader import SpoolReader
from toolwatch.store.handle import StoreHandle
from toolwatch.store.writer import ClickHouseSink

START = dt.datetime(2026, 11, 28, 8, tzinfo=dt.UTC)
# percentiles may differ; the reference recomputes every session, so it has no count of them
UNCOMPARED = {"latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "sessions_recomputed"}


@pytest.fixture
def store(store_path: Path, tmp_path: Path) -> Iterator[StoreHandle]:
    handle = StoreHandle(make_settings(store_path, tmp_path / "unused"))
    try:
        yield handle
    finally:
        handle.close()


def record(store: StoreHandle, folder: Path, frames: list[bytes]) -> None:
    """Two recorders, one after the other, each with empty memory (and an empty session-row cache, kept
    small so that rows are evicted and read back)."""
    half = len(frames) // 2
    for part, piece in enumerate((frames[:half], frames[half:])):
        spool = folder / f"spool{part}"
        spool.mkdir(parents=True)
        (spool / "w0-000000000001.seg").write_bytes(b"".join(piece))
        sink = ClickHouseSink(store)
        sink.sessions.max_events = 12  # a small cache: rows are evicted and read back from the store
        recorder = Recorder(SpoolReader(spool), sink, options=BuildOptions(), batch_rows=7, batch_interval=3600)
        while recorder.step():
            pass
        recorder.flush()
        cached = sink.sessions
        assert cached.events == sum(r.version for r in cached.rows.values()) <= cached.max_events


def run(store: StoreHandle, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return store.run(lambda c: runner.run(c, name, **params))


def windows(store: StoreHandle) -> list[tuple[dt.datetime, dt.datetime]]:
    first, last = store.run(lambda c: c.query("SELECT min(ts), max(ts) FROM llm_calls").result_rows[0])
    first, last = first.replace(tzinfo=dt.UTC), last.replace(tzinfo=dt.UTC)
    middle = first + (last - first) / 2
    return [
        (first - dt.timedelta(minutes=1), last + dt.timedelta(hours=2)),  # everything, long after
        (first - dt.timedelta(minutes=1), middle),  # cuts sessions at its end, before late results
        (middle, last + dt.timedelta(minutes=1)),  # cuts sessions at its start
        (first, last + dt.timedelta(seconds=DEFAULT_ABANDON_S, milliseconds=1)),  # idle exactly the timeout
    ]


def differences(store: StoreHandle, every_window: bool = True) -> list[str]:
    """Every difference between the analyzers and their references, over every window (or the first)."""
    found = []
    for n, (since, until) in enumerate(windows(store) if every_window else windows(store)[:1]):
        window = {"since": since.isoformat(), "until": until.isoformat()}
        got, want = (run(store, n, report_params(**window)) for n in ("report", "report_reference"))
        for a, b in zip(got, want, strict=False):
            keys = (set(a) | set(b)) - UNCOMPARED
            found += [
                f"{window} report {a['model']}.{k}: {a.get(k)} != {b.get(k)}" for k in keys if a.get(k) != b.get(k)
            ]
        if len(got) != len(want):
            found.append(f"{window} report has {len(got)} models, the reference {len(want)}")
        series = timeseries_params(**window)
        if run(store, "timeseries", series) != run(store, "timeseries_reference", series):
            found.append(f"{window} timeseries differ")
        params = sessions_params(**window, last="10000")
        listed, reference = run(store, "sessions", params), run(store, "sessions_reference", params)
        if sorted(listed, key=str) != sorted(reference, key=str):
            found.append(f"{window} sessions differ: {len(listed)} vs {len(reference)}")
        for row in reference[:3] if n == 0 else []:
            one = session_params(session=row["session"], **window)
            narrowed = store.run(lambda c, one=one: narrow_session(c, one))  # what the session view reads
            if run(store, "session", narrowed) != run(store, "session_reference", one):
                found.append(f"{window} session {row['session']} differs")
    return found


def stored_share(store: StoreHandle) -> float:
    since, until = windows(store)[0]
    [row] = run(store, "session_sources", report_params(since=since.isoformat(), until=until.isoformat()))
    return float(row["stored"] / max(1, row["stored"] + row["recomputed"]))


@settings(max_examples=2, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=sessions())
def test_stored_rows_give_the_query_time_figures(
    store: StoreHandle, tmp_path_factory: pytest.TempPathFactory, specs: list[SessionSpec]
) -> None:
    store.run(
        lambda c: [c.command(f"TRUNCATE TABLE {t}") for t in ("llm_calls", "tool_calls", "tool_results", "sessions")]
    )
    record(store, tmp_path_factory.mktemp("mix"), frames_of(specs, START))
    store.run(lambda c: c.command("SYSTEM STOP MERGES sessions"))
    try:
        assert differences(store) == []
    finally:
        store.run(lambda c: c.command("SYSTEM START MERGES sessions"))
    store.run(lambda c: c.command("OPTIMIZE TABLE sessions FINAL"))
    assert differences(store, every_window=False) == []
    assert stored_share(store) >= 0.5


def test_a_reclassify_rewrites_the_rows_and_a_corrupted_row_is_caught(store: StoreHandle, tmp_path: Path) -> None:
    specs = [
        SessionSpec(start_s=60.0 * i, steps=steps, header=i % 2 == 0, final=True, failed_first_turn=False)
        for i, steps in enumerate([((("ok", "model-a", 1.0),) * 3)] * 12)
    ]
    specs = [
        SessionSpec(s.start_s, tuple(_step(*x) for x in s.steps), s.header, s.final, s.failed_first_turn) for s in specs
    ]
    record(store, tmp_path, frames_of(specs, START))
    assert differences(store, every_window=False) == []
    assert stored_share(store) == 1.0
    # a rule that makes "value ..." results errors: the stored rows must follow
    done = store.run(lambda c: reclassify(c, Classifier.from_settings({"values": "^value"}), START))
    assert done.changed > 0 and len(done.sessions) == 12
    assert differences(store, every_window=False) == []
    assert (
        run(store, "report", report_params(since=START.isoformat(), until=(START + dt.timedelta(hours=1)).isoformat()))[
            0
        ]["tool_errors"]
        == done.changed
    )
    # a row that says something the raw rows do not: the comparison fails
    store.run(
        lambda c: c.command(
            "INSERT INTO sessions SELECT * REPLACE (version + 1 AS version,"
            " arrayMap(x -> 0, step_errors) AS step_errors)"
            " FROM sessions FINAL WHERE skey = (SELECT min(skey) FROM sessions)"
        )
    )
    assert differences(store, every_window=False) != []


def _step(kind: str, model: str, gap: float) -> Any:
    from tests.analyzers.session_mix import Step

    return Step(kind, model, gap)
