"""The fault suite's oracle: a workload whose every answered request must be stored exactly once, the load
that sends it, ``toolwatch serve`` to run it against, and the checks on what the store holds afterwards.

The workload is built so that one request is exactly one row in each table. Request ``n`` is an OpenAI
chat completion with the header ``Toolwatch-Property-Req: n`` (stored in ``llm_calls.properties['Req']``);
it carries back one new tool result, ``res-n``, and the fake upstream answers with one tool call,
``call-n`` (as JSON, or as an SSE stream for every other request). A request counts as *answered* only
when the client read a whole 200 response that holds its own ``call-n``: the guarantee under test is that
every answered request is stored once, and any other request at most once.

Also a command, so that the store is read in a process of its own (a process opens one chdb path only)::

    python -m tests.faults.oracle chdb:///abs/store [database]    # prints the counts as JSON
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import resource
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.fakes.upstreams import FakeUpstream, Received, Reply, ToolCallSpec
from tests.harness import ServeProcess, run_cli
from toolwatch.demo import wire_openai
from toolwatch.demo.script import Ids
from toolwatch.schemas.exchange import Exchange
from toolwatch.spool.frame import encode_parts

ROOT = Path(__file__).resolve().parents[2]
MODEL = "gpt-fault"
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
PATH = "/v1/chat/completions"
# table -> the column that identifies one of its rows
ROW_IDS = {"llm_calls": "call_id", "tool_calls": "tool_call_uid", "tool_results": "result_uid", "bodies": "call_id"}
ROLLUPS = {"calls_minute": ("llm_calls", "llm_calls"), "tool_calls_minute": ("tool_calls", "tool_calls")}
# figure -> the table whose every row it should count
WHOLE = {
    "calls_whole": "llm_calls",
    "tool_calls_whole": "tool_calls",
    "tool_results_whole": "tool_results",
    "bodies_whole": "bodies",
}


# -- the workload -------------------------------------------------------------------------------------
def is_stream(n: int) -> bool:
    return n % 2 == 1


def request_body(n: int, pad: int = 0) -> bytes:
    """Request ``n``: a question, the assistant's earlier call ``res-n`` and its result (one new result)."""
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": f"question {n} " + "x" * pad},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": f"res-{n}", "type": "function", "function": {"name": "lookup", "arguments": f'{{"n": {n}}}'}}
            ],
        },
        {"role": "tool", "tool_call_id": f"res-{n}", "content": f"result {n}"},
    ]
    return orjson.dumps({"model": MODEL, "stream": is_stream(n), "tools": TOOLS, "messages": messages})


def request_number(received: Received) -> int:
    return int(str(received.messages[-1]["tool_call_id"]).removeprefix("res-"))


def reply_for(received: Received) -> Reply:
    """The fake model's answer to request ``n``: one tool call, ``call-n``."""
    n = request_number(received)
    return Reply(tool_calls=(ToolCallSpec("lookup", f'{{"n": {n}}}', id=f"call-{n}"),))


def fake_upstream() -> FakeUpstream:
    return FakeUpstream(reply_for, record=False)


def complete(n: int, status: int, body: bytes) -> bool:
    """Whether ``body`` is the whole answer to request ``n``."""
    if status != 200:
        return False
    if is_stream(n):
        return body.endswith(b"data: [DONE]\n\n") and f'"id":"call-{n}"'.encode() in body
    try:
        return bool(orjson.loads(body)["choices"][0]["message"]["tool_calls"][0]["id"] == f"call-{n}")
    except (ValueError, KeyError, IndexError, TypeError):
        return False


def frame_parts(n: int, pad: int = 0) -> tuple[Exchange, bytes, bytes]:
    """Request ``n`` as the proxy would spool it (for tests that drive the recorder without a proxy)."""
    body = request_body(n, pad)
    received = Received.capture("POST", PATH, {"content-type": "application/json"}, body)
    rendered = wire_openai.render(reply_for(received), received, Ids())
    response = b"".join(rendered.pieces)
    exchange = Exchange(
        id=uuid.uuid4(),
        started_at=dt.datetime.now(dt.UTC),
        upstream="openai",
        api="openai",
        method="POST",
        path=PATH,
        status=200,
        latency_ms=1.0,
        ttfb_ms=0.5,
        request_content_type="application/json",
        response_content_type=rendered.headers["content-type"],
        request_size=len(body),
        response_size=len(response),
        properties={"Req": str(n)},
    )
    return exchange, body, response


def frame_bytes(n: int, pad: int = 0) -> bytes:
    return b"".join(encode_parts(*frame_parts(n, pad)))


# -- the load -----------------------------------------------------------------------------------------
@dataclass
class Tally:
    sent: set[int] = field(default_factory=set)
    answered: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)  # request -> why it is not answered


class Load:
    """``concurrency`` workers sending the workload to ``url`` (None while toolwatch is down: they wait),
    each request with a number of its own. At most ``quota`` requests are sent (None: no bound); raise it
    with ``allow`` to send more."""

    def __init__(self, concurrency: int = 12, pad: int = 0, quota: int | None = None) -> None:
        self.concurrency = concurrency
        self.pad = pad
        self.quota = quota
        self.url: str | None = None
        self.tally = Tally()
        self._stopping = False
        self._finishing = False
        self._next = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    def allow(self, more: int) -> None:
        self.quota = (self.quota or 0) + more

    async def start(self) -> Load:
        timeout = aiohttp.ClientTimeout(total=60.0)
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.concurrency), timeout=timeout)
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]
        return self

    def _spent(self) -> bool:
        return self.quota is not None and self._next >= self.quota

    async def _worker(self) -> None:
        assert self._session is not None
        while not self._stopping:
            if self.url is None or self._spent():
                if self._finishing and self._spent():
                    return
                await asyncio.sleep(0.005)
                continue
            n, url = self._next, self.url
            self._next += 1
            self.tally.sent.add(n)
            headers = {
                "content-type": "application/json",
                "authorization": "Bearer sk-x",
                "Toolwatch-Property-Req": str(n),
            }
            try:
                async with self._session.post(
                    f"{url}/openai{PATH}", data=request_body(n, self.pad), headers=headers
                ) as r:
                    status, body = r.status, await r.read()
            except (aiohttp.ClientError, TimeoutError) as e:
                self.tally.failed[n] = type(e).__name__
                await asyncio.sleep(0.02)  # toolwatch is down: do not spin through request numbers
                continue
            if complete(n, status, body):
                self.tally.answered.add(n)
            else:
                self.tally.failed[n] = f"status {status}, {len(body)} bytes"

    async def wait_answered(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.tally.answered) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.tally.answered)} of {count} answered: {self.tally.failed}")
            await asyncio.sleep(0.005)

    async def finish(self) -> Tally:
        """Send the rest of the quota, wait for every answer, then close."""
        self._finishing = True
        await asyncio.gather(*self._tasks)
        await self.close()
        return self.tally

    async def stop(self) -> Tally:
        """Send nothing more; requests in flight finish (or fail) first."""
        self._stopping = True
        await asyncio.gather(*self._tasks)
        await self.close()
        return self.tally

    async def close(self) -> None:
        self._stopping = True
        for task in self._tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None


# -- toolwatch serve, killable ------------------------------------------------------------------------
def limit_file_size(limit: int) -> Callable[[], None]:
    """A ``preexec_fn``: files this process (and its children) write stop growing at ``limit`` bytes.
    Only the soft limit, so a child's limit can be raised again with ``prlimit``."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return apply


class FaultServe(ServeProcess):
    """``toolwatch serve`` in a session of its own (so its process group can be killed without the test),
    optionally with a file-size limit."""

    def __init__(
        self, data: Path, upstream_url: str, env: dict[str, str] | None = None, fsize: int | None = None
    ) -> None:
        super().__init__(data, upstream_url, env={"TOOLWATCH_LOG_LEVEL": "warning", **(env or {})})
        self.fsize = fsize

    async def start(self) -> FaultServe:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "toolwatch",
            "serve",
            "--port",
            "0",
            "--store",
            self.store,
            "--spool",
            str(self.data / "spool"),
            env=self.env,
            cwd=str(self.data),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=limit_file_size(self.fsize) if self.fsize else None,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not line.startswith(b"toolwatch listening on "):
            err = await asyncio.wait_for(self.proc.stderr.read(), 10) if self.proc.stderr else b""
            raise RuntimeError(f"serve did not start (exit {self.proc.returncode}): {line!r} {err.decode()[-2000:]}")
        self.url = line.decode().split()[-1]
        self._stderr_task = asyncio.get_running_loop().create_task(self._collect_stderr())
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def reap(self) -> int:
        """Wait for serve to exit (after a kill) and for its standard error to close."""
        assert self.proc is not None
        rc = await asyncio.wait_for(self.proc.wait(), 30)
        if self._stderr_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stderr_task, 5)
        return rc


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    """No such process, or a zombie (dead, only waiting for its parent to collect it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "?")
    return state in ("Z", "X")


async def wait_gone(pids: Iterable[int], timeout: float = 5.0) -> float:
    """Seconds until every one of ``pids`` is gone; raises TimeoutError past ``timeout``."""
    started = time.monotonic()
    pids = list(pids)
    while not all(gone(p) for p in pids):
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"still running after {timeout}s: {[p for p in pids if not gone(p)]}")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


KILL_TARGETS = ("serve", "group", "children")


async def kill(serve: FaultServe, target: str) -> tuple[list[int], float | None]:
    """SIGKILL ``serve`` alone, its process group, or its children. Returns the children it had and, when
    serve itself was killed, the seconds they took to be gone."""
    kids = children(serve.pid)
    if target == "children":
        for pid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return kids, None
    if target == "group":
        os.killpg(serve.pid, signal.SIGKILL)
    else:
        os.kill(serve.pid, signal.SIGKILL)
    started = time.monotonic()
    await serve.reap()
    await wait_gone(kids)
    return kids, time.monotonic() - started


def settled(status: dict[str, Any]) -> bool:
    """The recorder runs and has stored everything in the spool."""
    return (
        bool(status.get("recorder_alive"))
        and status.get("spool_lag_bytes") == 0
        and status.get("pending_batch_rows") == 0
    )


@dataclass(frozen=True)
class Round:
    number: int
    target: str
    children: list[int]  # serve's children when it was killed
    gone_after: float | None  # seconds from killing serve until its children were gone (None: serve lived)
    restart: float  # seconds until serve (or, for "children", its recorder) ran again
    sent: int  # totals so far
    answered: int
    failed: int


class CrashLoop:
    """``toolwatch serve`` under ``load``, SIGKILLed once a round: serve alone, its process group, or its
    children, in turn. A killed serve is started again at once on the same store and spool; killed
    children are restarted by serve itself. Each round allows ``per_round`` more requests and kills when
    ``kill_after`` of them are answered, so requests are in flight at the kill."""

    def __init__(
        self,
        data: Path,
        upstream_url: str,
        load: Load,
        *,
        per_round: int = 150,
        kill_after: int = 80,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data, self.upstream_url, self.load, self.env = data, upstream_url, load, env
        self.per_round, self.kill_after = per_round, kill_after
        self.serve: FaultServe | None = None
        self.rounds: list[Round] = []

    async def start_serve(self) -> FaultServe:
        self.serve = await FaultServe(self.data, self.upstream_url, env=self.env).start()
        self.load.url = self.serve.url
        return self.serve

    async def start(self) -> CrashLoop:
        self.load.quota = self.load.quota or 0  # requests are sent round by round
        await self.start_serve()
        await self.load.start()
        return self

    async def round(self) -> Round:
        serve = self.serve
        assert serve is not None
        target = KILL_TARGETS[len(self.rounds) % len(KILL_TARGETS)]
        before = await serve.wait_for(lambda s: bool(s.get("recorder_alive")))
        self.load.allow(self.per_round)
        await self.load.wait_answered(len(self.load.tally.answered) + self.kill_after)
        if target != "children":
            self.load.url = None  # nothing new is sent to the dying serve; what is in flight stays so
        children, gone_after = await kill(serve, target)
        started = time.monotonic()
        if target == "children":  # serve lives on, and restarts its recorder; the load goes on
            again = before["recorder_restarts"] + 1
            await serve.wait_for(lambda s: bool(s.get("recorder_alive")) and s["recorder_restarts"] == again)
        else:
            await self.start_serve()  # it must start at once: the dead serve's locks went with it
        tally = self.load.tally
        done = Round(
            len(self.rounds) + 1,
            target,
            children,
            gone_after,
            time.monotonic() - started,
            len(tally.sent),
            len(tally.answered),
            len(tally.failed),
        )
        self.rounds.append(done)
        return done

    async def finish(self) -> Tally:
        """A last bit of load with nothing killed, then the load stops and the recorder catches up."""
        assert self.serve is not None
        self.load.allow(self.kill_after)
        tally = await self.load.finish()
        await self.serve.wait_for(settled, timeout=120)
        return tally

    async def close(self) -> None:
        """Kill whatever still runs (after a failure)."""
        await self.load.close()
        if self.serve is not None and self.serve.proc is not None and self.serve.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.serve.pid, signal.SIGKILL)
            await self.serve.reap()


# -- what the store holds -----------------------------------------------------------------------------
def store_counts(query: Callable[[str], Sequence[Sequence[Any]]]) -> dict[str, Any]:
    """Every figure the checks need, all without FINAL. ``query(sql)`` returns rows."""
    out: dict[str, Any] = {}
    for table, column in ROW_IDS.items():
        ((count, uniq),) = query(f"SELECT count(), uniqExact({column}) FROM {table}")
        out[table] = {"count": int(count), "uniq": int(uniq)}
    for rollup, (column, _source) in ROLLUPS.items():
        out[rollup] = int(query(f"SELECT countMerge({column}) FROM {rollup}")[0][0])
    out["per_req"] = {str(r): int(c) for r, c in query("SELECT properties['Req'], count() FROM llm_calls GROUP BY 1")}
    # the session rows (one version per event): with FINAL, one row per session, and no call in two rows
    ((rows,),) = query("SELECT count() FROM sessions FINAL WHERE is_deleted = 0")
    ((keys,),) = query("SELECT uniqExact(skey) FROM sessions")  # every version, merged or not
    ((steps, step_ids),) = query(
        "SELECT count(), uniqExact(c) FROM (SELECT arrayJoin(step_call) AS c FROM sessions FINAL WHERE is_deleted = 0)"
    )
    out["sessions"] = {"rows": int(rows), "keys": int(keys), "steps": int(steps), "step_ids": int(step_ids)}
    # a stored row is whole: its call is ok with one call and one result, and the rows of the other tables
    # that point at it are the ones its request and answer hold
    out["calls_whole"] = int(
        query(
            "SELECT count() FROM llm_calls WHERE status = 200 AND outcome = 'ok' AND tool_call_count = 1"
            f" AND tool_result_count = 1 AND model = '{MODEL}'"
        )[0][0]
    )
    out["tool_calls_whole"] = int(
        query(
            "SELECT count() FROM tool_calls AS t INNER JOIN (SELECT DISTINCT call_id, properties['Req'] AS req"
            " FROM llm_calls) AS c ON t.call_id = c.call_id WHERE t.tool_call_id = concat('call-', c.req)"
        )[0][0]
    )
    out["tool_results_whole"] = int(
        query(
            "SELECT count() FROM tool_results AS t INNER JOIN (SELECT DISTINCT call_id, properties['Req'] AS req"
            " FROM llm_calls) AS c ON t.call_id = c.call_id WHERE t.tool_call_id = concat('res-', c.req)"
        )[0][0]
    )
    out["bodies_whole"] = int(
        query(
            "SELECT count() FROM bodies AS b INNER JOIN (SELECT DISTINCT call_id, properties['Req'] AS req"
            " FROM llm_calls) AS c ON b.call_id = c.call_id"
            " WHERE position(b.request_body, concat('\"res-', c.req, '\"')) > 0"
            " AND position(b.response_body, concat('\"call-', c.req, '\"')) > 0"
        )[0][0]
    )
    return out


def stop_merges(query: Callable[[str], Any], database: str) -> None:
    """Background merges of a ReplacingMergeTree can fold a duplicate away before it is counted: stop them
    for the tables of ``database``, so a duplicate stays visible to ``count()``."""
    for table in (*ROW_IDS, *ROLLUPS):
        query(f"SYSTEM STOP MERGES `{database}`.`{table}`")


async def read_store(store: str, database: str = "toolwatch") -> dict[str, Any]:
    """``store_counts`` in a process of its own (the store must not be held by a running serve)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.faults.oracle",
        store,
        database,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        raise RuntimeError(f"reading the store failed: {err.decode()[-2000:]}")
    return dict(orjson.loads(out))


@dataclass
class Verdict:
    """What the store holds against what the client saw."""

    sent: int
    answered: int
    stored: int  # distinct requests in llm_calls
    stored_ids: set[int]
    missing: list[int]  # answered, not stored
    duplicates: int  # rows beyond one per request or row id, in any table or rollup
    problems: list[str]


def judge(counts: dict[str, Any], answered: Iterable[int], sent: Iterable[int] | None = None) -> Verdict:
    """Every answered request stored once; nothing stored twice; the tables and rollups agree."""
    answered, problems = set(answered), []
    sent = set(sent) if sent is not None else set(answered)
    per_req: dict[str, int] = counts["per_req"]
    missing = sorted(n for n in answered if per_req.get(str(n), 0) == 0)
    if missing:
        problems.append(f"{len(missing)} answered request(s) not stored: {missing[:20]}")
    twice = {r: c for r, c in per_req.items() if c > 1}
    if twice:
        problems.append(f"{len(twice)} request(s) stored more than once: {dict(list(twice.items())[:20])}")
    unknown = sorted(r for r in per_req if not r.isdigit() or int(r) not in sent)
    if unknown:
        problems.append(f"stored requests that were never sent: {unknown[:20]}")
    duplicates = sum(c - 1 for c in twice.values())
    stored = len(per_req)
    for table in ROW_IDS:
        c = counts[table]
        if c["count"] != c["uniq"]:
            problems.append(f"{table}: {c['count']} rows but {c['uniq']} distinct ids")
            duplicates += c["count"] - c["uniq"]
        if c["count"] != stored:
            problems.append(f"{table}: {c['count']} rows for {stored} stored requests (one each expected)")
    for rollup, (_column, source) in ROLLUPS.items():
        if counts[rollup] != counts[source]["count"] or counts[rollup] != stored:
            problems.append(
                f"{rollup} counts {counts[rollup]}, {source} has {counts[source]['count']} rows,"
                f" {stored} requests stored"
            )
            duplicates += max(0, counts[rollup] - stored)
    s = counts["sessions"]
    if s["steps"] != s["step_ids"] or s["rows"] != s["keys"]:
        problems.append(
            f"sessions: {s['rows']} rows with FINAL for {s['keys']} sessions, {s['steps']} steps of"
            f" {s['step_ids']} calls"
        )
    for what, table in WHOLE.items():
        expected = counts[table]["count"]
        if counts[what] != expected:
            problems.append(f"{what}: {counts[what]} of {expected} rows hold what their request and answer hold")
    stored_ids = {int(r) for r in per_req if r.isdigit()}
    return Verdict(len(sent), len(answered), stored, stored_ids, missing, duplicates, problems)


async def cli_problems(store: str, counts: dict[str, Any], cwd: Path) -> list[str]:
    """``toolwatch report`` and ``toolwatch calls`` agree with the tables."""
    problems = []
    rc, out, err = await run_cli("report", "--json", "--since", "1h", "--store", store, cwd=cwd)
    if rc != 0:
        return [f"toolwatch report failed: {err[-500:]}"]
    reported = sum(int(row["llm_calls"]) for row in orjson.loads(out))
    if reported != counts["llm_calls"]["count"]:
        problems.append(f"toolwatch report counts {reported} calls, llm_calls has {counts['llm_calls']['count']}")
    rc, out, err = await run_cli("calls", "--json", "--last", "10000", "--store", store, cwd=cwd)
    if rc != 0:
        return [*problems, f"toolwatch calls failed: {err[-500:]}"]
    rows = orjson.loads(out)
    ids = {r["call_id"] for r in rows}
    if len(rows) != counts["llm_calls"]["count"] or len(ids) != len(rows):
        problems.append(
            f"toolwatch calls lists {len(rows)} rows ({len(ids)} distinct), llm_calls has"
            f" {counts['llm_calls']['count']}"
        )
    return problems


def main(argv: list[str]) -> int:
    import clickhouse_connect

    dsn, database = argv[0], (argv[1] if len(argv) > 1 else "toolwatch")
    client = clickhouse_connect.get_client(dsn=dsn, database=database)
    try:
        counts = store_counts(lambda sql: client.query(sql).result_rows)
    finally:
        client.close()
    sys.stdout.buffer.write(orjson.dumps(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
