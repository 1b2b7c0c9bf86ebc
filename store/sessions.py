"""Session rows kept at ingest: after each batch's event tables are stored, every session the batch touched
is rebuilt from its stored row plus the batch's new events, and written as a new version (``sessions``,
migration 0011).

A call belongs to a session when the recorder placed it: its ``Toolwatch-Session-Id`` (``h:<id>``), the
session its resent tool-call ids or previous response led to (``k:<link_key>``), or, for a first turn, its
own conversation key (``k:<conv_key>``). The same rule is ``placed_key`` in the analyzers' SQL. A call the
recorder could not place (no key, or links only a join can resolve) gets no row: the report recomputes its
session from the raw rows. A result joins the row of the call that produced it; one whose producer is not a
step of that row counts in ``unplaced``, and the session is recomputed at query time too.

Events are keyed (steps by call id, results by tool-call id), so folding an event twice changes nothing,
and the version is the number of distinct events. Rows are cached (least recently used go first, and rows
idle for an hour); a row not in the cache is read back from the store, never rebuilt from memory alone.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from uuid import UUID

from clickhouse_connect.driver.client import Client

from toolwatch.schemas.records import LlmCall, ToolResult
from toolwatch.schemas.vocab import TOKEN_LIMIT_REASONS, UPSTREAM_FAILURES

ZERO = UUID(int=0)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
STEP_COLUMNS = (
    "step_call",
    "step_ts",
    "step_model",
    "step_requested",
    "step_upstream_failed",
    "step_ok",
    "step_final",
    "step_tools",
    "step_malformed",
    "step_hash",
    "step_results",
    "step_errors",
)
COLUMNS = (
    "skey",
    "version",
    "is_deleted",
    "agent",
    "agent_key",
    "user_id",
    "properties",
    "first_ts",
    "last_ts",
    *STEP_COLUMNS,
    "sigs",
    "result_ids",
    "result_producer",
    "result_error",
    "unplaced",
)


def placed_key(call: LlmCall) -> str:
    """The session key the recorder gave the call, "" when only the SQL linker can tell."""
    if call.session_id:
        return f"h:{call.session_id}"
    if call.link_key:
        return f"k:{call.link_key}"
    if call.previous_response_id or call.first_prior_tool_call_id or not call.conv_key:
        return ""
    return f"k:{call.conv_key}"


class Step(NamedTuple):
    ts: dt.datetime
    call_id: UUID
    model: str
    requested: str
    upstream_failed: bool
    ok: bool
    final: bool
    tools: int
    malformed: int
    request_hash: int
    sigs: tuple[int, ...]


def step_of(call: LlmCall) -> Step:
    upstream_failed = (
        call.status >= 500
        or call.outcome in UPSTREAM_FAILURES
        or (call.status == 0 and call.outcome != "client_aborted")
    )
    ok = 200 <= call.status <= 399 and call.outcome == "ok"
    final = ok and call.tool_call_count == 0 and (call.finish_reason or "") not in TOKEN_LIMIT_REASONS
    return Step(
        _utc(call.ts),
        call.call_id,
        call.model,
        call.model_requested or "",
        upstream_failed,
        ok,
        final,
        call.tool_call_count,
        call.malformed_count,
        call.request_hash,
        tuple(call.tool_sigs),
    )


@dataclass
class Row:
    skey: str
    agent: str = ""
    agent_key: str = ""
    user_id: str = ""
    properties: dict[str, str] = field(default_factory=dict)
    properties_ts: dt.datetime = EPOCH
    steps: dict[UUID, Step] = field(default_factory=dict)
    results: dict[str, tuple[UUID, bool, dt.datetime]] = field(default_factory=dict)  # id -> producer, error, ts
    stored_sigs: list[int] = field(default_factory=list)  # the loop signatures of the steps read back
    touched: float = 0.0

    @property
    def version(self) -> int:
        return len(self.steps) + len(self.results)

    def add_call(self, call: LlmCall) -> None:
        if call.call_id in self.steps:
            return
        self.steps[call.call_id] = step_of(call)
        self.agent = self.agent or call.agent
        self.agent_key = self.agent_key or (call.agent or f"{call.upstream}:{call.key_fingerprint}")
        self.user_id = self.user_id or call.user_id
        ts = _utc(call.ts)
        if ts >= self.properties_ts:  # the latest call's properties, as the SQL's argMax(properties, ts)
            self.properties, self.properties_ts = dict(call.properties), ts

    def add_result(self, result: ToolResult) -> None:
        if result.tool_call_id not in self.results:
            self.results[result.tool_call_id] = (result.producer_call_id, bool(result.error_rule), _utc(result.ts))

    def values(self) -> list[Any]:
        steps = sorted(self.steps.values(), key=lambda s: (s.ts, s.call_id.int))
        index = {s.call_id: i for i, s in enumerate(steps)}
        results, errors = [0] * len(steps), [0] * len(steps)
        unplaced = 0
        for producer, error, _ in self.results.values():
            i = index.get(producer)
            if i is None:
                unplaced += 1
            else:
                results[i] += 1
                errors[i] += error
        stamps = [s.ts for s in steps] + [r[2] for r in self.results.values()]
        return [
            self.skey,
            self.version,
            0,
            self.agent,
            self.agent_key,
            self.user_id,
            self.properties,
            steps[0].ts if steps else min(stamps, default=EPOCH),
            max(stamps, default=EPOCH),
            [s.call_id for s in steps],
            [s.ts for s in steps],
            [s.model for s in steps],
            [s.requested for s in steps],
            [int(s.upstream_failed) for s in steps],
            [int(s.ok) for s in steps],
            [int(s.final) for s in steps],
            [s.tools for s in steps],
            [s.malformed for s in steps],
            [s.request_hash for s in steps],
            results,
            errors,
            self.stored_sigs + [sig for s in steps for sig in s.sigs],
            list(self.results),
            [r[0] for r in self.results.values()],
            [int(r[1]) for r in self.results.values()],
            unplaced,
        ]


def row_from(data: dict[str, Any]) -> Row:
    """A row read back from the store."""
    row = Row(
        data["skey"],
        agent=data["agent"],
        agent_key=data["agent_key"],
        user_id=data["user_id"],
        properties=dict(data["properties"]),
        properties_ts=_utc(data["last_ts"]),
    )
    row.stored_sigs = list(data["sigs"])  # stored flat; the steps read back carry none of their own
    for i, call_id in enumerate(data["step_call"]):
        row.steps[call_id] = Step(
            _utc(data["step_ts"][i]),
            call_id,
            data["step_model"][i],
            data["step_requested"][i],
            bool(data["step_upstream_failed"][i]),
            bool(data["step_ok"][i]),
            bool(data["step_final"][i]),
            data["step_tools"][i],
            data["step_malformed"][i],
            data["step_hash"][i],
            (),
        )
    for tool_call_id, producer, error in zip(
        data["result_ids"], data["result_producer"], data["result_error"], strict=True
    ):
        row.results[tool_call_id] = (producer, bool(error), row.properties_ts)
    return row


# how a block of rows is inserted: (client, table, column names, rows, settings)
Insert = Callable[[Client, str, Sequence[str], list[list[Any]], dict[str, Any]], None]


def insert_rows(
    client: Client, table: str, columns: Sequence[str], rows: list[list[Any]], settings: dict[str, Any]
) -> None:
    client.insert(table, rows, column_names=list(columns), settings=settings)


class SessionUpkeep:
    """The cache of session rows and the fold of each batch into them. ``insert`` writes the rows that
    changed (the ClickHouse sink gives its own, which hands the engine bytes to parse)."""

    def __init__(
        self, capacity: int = 100_000, idle_s: float = 3600.0, insert: Insert = insert_rows, max_events: int = 200_000
    ) -> None:
        """At most ``capacity`` rows holding ``max_events`` steps and results in all (about 400 bytes each in
        memory, measured by bench/report_scale.py --upkeep-only: 200,000 are about 80 MB, and as many
        producer ids about 25 MB), none idle for more than ``idle_s``."""
        self.capacity = capacity
        self.idle_s = idle_s
        self.insert = insert
        self.max_events = max_events
        self.events = 0  # steps and results in the cached rows (their versions)
        self.rows: OrderedDict[str, Row] = OrderedDict()
        self.producers: OrderedDict[UUID, str] = OrderedDict()  # call id -> its session key

    def fold(self, client: Client, calls: Iterable[LlmCall], results: Iterable[ToolResult], token: str = "") -> int:
        """Fold a stored batch's events into their sessions and write the rows that changed; returns how many."""
        now = time.monotonic()
        keys: dict[UUID, str] = {}
        touched: dict[str, list[Any]] = {}
        for call in calls:
            if call.endpoint == "other":
                continue
            key = placed_key(call)
            keys[call.call_id] = key
            if key:
                touched.setdefault(key, []).append(call)
        for result in results:
            key = self._producer_key(result.producer_call_id) or keys.get(result.call_id, "")
            if key:
                touched.setdefault(key, []).append(result)
        if not touched:
            return 0
        try:
            return self._fold(client, touched, now, token)
        except Exception:
            self.forget(touched)  # memory may be ahead of the store: read these rows back next time
            raise

    def _fold(self, client: Client, touched: dict[str, list[Any]], now: float, token: str) -> int:
        self._load(client, [k for k in touched if k not in self.rows])
        changed = []
        for key, events in touched.items():
            row = self.rows.get(key) or Row(key)
            before = row.version if key in self.rows else 0
            for event in events:
                if isinstance(event, ToolResult):
                    row.add_result(event)
                else:
                    row.add_call(event)
                    self._remember(event.call_id, key)
            row.touched = now
            self.rows[key] = row
            self.rows.move_to_end(key)
            self.events += row.version - before
            if row.version != before:
                changed.append(row)
        if changed:
            settings = {"insert_deduplication_token": f"{token}:sessions"} if token else {}
            self.insert(client, "sessions", COLUMNS, [r.values() for r in changed], settings)
        self._evict(now)
        return len(changed)

    def forget(self, keys: Iterable[str] | None = None) -> None:
        """Drop cached rows (all of them by default): the next event reads them back from the store."""
        if keys is None:
            self.rows.clear()
            self.events = 0
            return
        for key in keys:
            row = self.rows.pop(key, None)
            if row is not None:
                self.events -= row.version

    def _producer_key(self, call_id: UUID) -> str:
        if call_id == ZERO:
            return ""
        return self.producers.get(call_id, "")

    def _remember(self, call_id: UUID, key: str) -> None:
        self.producers[call_id] = key
        self.producers.move_to_end(call_id)
        if len(self.producers) > self.max_events:
            self.producers.popitem(last=False)

    def _load(self, client: Client, keys: list[str]) -> None:
        if not keys:
            return
        q = client.query(
            f"SELECT {', '.join(COLUMNS)} FROM sessions FINAL WHERE skey IN {{keys:Array(String)}}",
            parameters={"keys": keys},
        )
        for values in q.result_rows:
            row = row_from(dict(zip(q.column_names, values, strict=True)))
            old = self.rows.pop(row.skey, None)
            self.events += row.version - (old.version if old is not None else 0)
            self.rows[row.skey] = row
            for call_id in row.steps:
                self._remember(call_id, row.skey)

    def _evict(self, now: float) -> None:
        while self.rows:
            key, row = next(iter(self.rows.items()))
            if len(self.rows) > self.capacity or self.events > self.max_events or now - row.touched > self.idle_s:
                del self.rows[key]
                self.events -= row.version
            else:
                break


def rewrite_results(client: Client, verdicts: dict[str, bool]) -> list[str]:
    """After a reclassify: the session rows holding these results (tool-call id -> is an error now), rewritten
    with the new verdicts at the same version (the later insert wins). Returns their session keys, which a
    running recorder must then read back rather than trust its cache."""
    if not verdicts:
        return []
    ids, errors = list(verdicts), [int(v) for v in verdicts.values()]
    params = {"ids": ids, "errors": errors}
    keys = [
        r[0]
        for r in client.query(
            "SELECT skey FROM sessions FINAL WHERE hasAny(result_ids, {ids:Array(String)})", parameters=params
        ).result_rows
    ]
    if keys:
        kept = ", ".join(c for c in COLUMNS if c not in ("step_errors", "result_error"))
        client.command(
            f"""
            INSERT INTO sessions ({kept}, step_errors, result_error)
            SELECT {kept},
                   arrayMap(c -> toUInt32(arrayCount((p, e) -> p = c AND e = 1, result_producer, new_error)),
                            step_call) AS step_errors,
                   new_error AS result_error
            FROM
            (
                SELECT *, arrayMap((id, e) -> if(has({{ids:Array(String)}}, id),
                                   toUInt8({{errors:Array(UInt8)}}[indexOf({{ids:Array(String)}}, id)]), e),
                                   result_ids, result_error) AS new_error
                FROM sessions FINAL
                WHERE skey IN {{keys:Array(String)}}
            )
            """,
            parameters={**params, "keys": keys},
        )
    return keys


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
