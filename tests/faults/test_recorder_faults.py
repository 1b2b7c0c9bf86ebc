"""Faults inside the recorder, driven in process over a real spool and the embedded store: a crash after the
store took a batch but before the spool checkpoint, a store that fails between tables, and damaged segments.

Each test has a database of its own in the shared embedded store, with background merges stopped, so a
duplicate row stays visible to ``count()`` (a ReplacingMergeTree merge could fold it away otherwise).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from tests.faults.oracle import frame_bytes, frame_parts, judge, stop_merges, store_counts
from tests.harness import make_settings, run_cli
from toolwatch.recorder.build import BuildOptions
from toolwatch.recorder.loop import Recorder
from toolwatch.spool.deadletter import DeadLetters
from toolwatch.spool.reader import INTENT, SpoolReader
from toolwatch.spool.writer import SpoolWriter
from toolwatch.store.handle import StoreHandle
from toolwatch.store.sink import Batch
from toolwatch.store.writer import ClickHouseSink, insert_batch

MiB = 1024 * 1024


class Crash(Exception):
    """The recorder process dies here: nothing after this point of its code runs."""


@pytest.fixture
def store(store_path: Path, tmp_path: Path) -> Iterator[StoreHandle]:
    settings = make_settings(store_path, tmp_path / "spool")
    handle = StoreHandle(settings)
    stop_merges(lambda sql: handle.run(lambda c: c.command(sql)), settings.database)
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir(exist_ok=True)
    return path


def counts(store: StoreHandle) -> dict[str, Any]:
    return store_counts(lambda sql: store.run(lambda c: c.query(sql).result_rows))


def recorder(spool: Path, sink: ClickHouseSink) -> Recorder:
    """A recorder as the recorder process makes one: a fresh reader (it resumes a batch left unfinished)
    and its memory warmed from the store."""
    rec = Recorder(SpoolReader(spool), sink, options=BuildOptions(), batch_rows=1, batch_interval=0.01)
    rec.links.warm(lambda sql, params: sink.store.run(lambda c: c.query(sql, parameters=params).result_rows))
    return rec


def drain(rec: Recorder, timeout: float = 30.0) -> None:
    """Step until everything in the spool is stored and checkpointed."""
    deadline = time.monotonic() + timeout
    while rec.reader.lag_bytes() or rec.batch.rows():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the recorder did not drain the spool: {rec.status()}")
        if not rec.step():
            time.sleep(0.01)
    rec.step(time.monotonic() + 3600)  # idle: the last checkpoint, finished segments deleted


def crash_on_commits(monkeypatch: pytest.MonkeyPatch, crashes: set[int]) -> dict[str, int]:
    """The recorder dies at the ``n``-th checkpoint of a stored batch (the store has the batch, the spool
    does not know it yet), for every ``n`` in ``crashes``. A checkpoint follows a stored batch when the
    batch's intent is saved: ``fix_batch`` writes it before the store write, ``commit`` removes it."""
    state = {"checkpoints": 0, "crashed": 0}
    commit = SpoolReader.commit

    def checkpoint(self: SpoolReader) -> None:
        if (self.directory / INTENT).exists():
            state["checkpoints"] += 1
            if state["checkpoints"] in crashes:
                state["crashed"] += 1
                raise Crash(f"before checkpoint {state['checkpoints']}")
        commit(self)

    monkeypatch.setattr(SpoolReader, "commit", checkpoint)
    return state


def assert_exact(store: StoreHandle, stored: set[int], sent: set[int] | None = None) -> None:
    verdict = judge(counts(store), stored, sent)
    assert verdict.problems == [], verdict
    assert verdict.stored_ids == stored


async def test_replay_after_store_write_before_checkpoint(
    store: StoreHandle, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = crash_on_commits(monkeypatch, {2, 3, 6, 9})  # 2 then 3: the replay itself dies once more
    writer = SpoolWriter(spool, cap_bytes=64 * MiB, segment_bytes=64 * 1024, segment_max_age=3600)
    await writer.start()  # small segments: batches span open and sealed segments
    sink = ClickHouseSink(store)
    rec = recorder(spool, sink)
    sent = 0
    for _wave in range(10):
        for _ in range(15):  # more frames arrive while a crashed batch waits to be replayed
            assert writer.append(*frame_parts(sent))
            sent += 1
        while True:
            try:
                drain(rec)
                break
            except Crash:
                rec = recorder(spool, sink)  # the supervisor starts a new recorder process
    await writer.close()
    drain(rec)
    assert state["crashed"] == 4
    assert_exact(store, set(range(sent)))


class InsertFault:
    """A client whose first insert into ``table`` fails: before it reaches the store, or after the store
    took it (the acknowledgement is lost: a timeout, a connection reset)."""

    def __init__(self, table: str, after: bool) -> None:
        self.table, self.after, self.fired = table, after, False
        self.client: Client | None = None

    def insert(self, table: str, *args: Any, **kwargs: Any) -> Any:
        assert self.client is not None
        fire = table == self.table and not self.fired
        self.fired = self.fired or fire
        if fire and not self.after:
            raise OperationalError(f"injected: {table} insert failed before reaching the store")
        result = self.client.insert(table, *args, **kwargs)
        if fire:
            raise OperationalError(f"injected: {table} insert taken, its acknowledgement lost")
        return result


class FaultySink(ClickHouseSink):
    """The real sink, through ``InsertFault``; ``up`` says whether the store answers meanwhile."""

    def __init__(self, store: StoreHandle, fault: InsertFault, up: bool) -> None:
        super().__init__(store)
        self.fault, self.up = fault, up

    def write(self, batch: Batch) -> None:
        def run(client: Client) -> None:
            self.fault.client = client
            insert_batch(self.fault, batch)  # type: ignore[arg-type]

        self.store.run(run)

    def reachable(self) -> bool:
        return self.up and super().reachable()


@pytest.mark.parametrize(
    ("after", "up", "crash"),
    [
        pytest.param(False, False, False, id="fails-during-outage"),
        pytest.param(True, False, False, id="ack-lost-during-outage"),
        pytest.param(False, True, False, id="fails-store-up"),
        # found by this suite: isolating refused rows once wrote them again under new tokens
        pytest.param(True, True, False, id="ack-lost-store-up"),
        pytest.param(False, True, True, id="fails-store-up-then-crash"),
    ],
)
def test_store_fails_between_tables(
    store: StoreHandle, spool: Path, monkeypatch: pytest.MonkeyPatch, after: bool, up: bool, crash: bool
) -> None:
    (spool / "w0-000000000001.seg").write_bytes(b"".join(frame_bytes(n) for n in range(40)))
    fault = InsertFault("tool_calls", after=after)
    state = crash_on_commits(monkeypatch, {1} if crash else set())
    rec = recorder(spool, FaultySink(store, fault, up))
    try:
        drain(rec)
    except Crash:
        rec = recorder(spool, ClickHouseSink(store))
        drain(rec)
    assert fault.fired and state["crashed"] == int(crash)
    assert rec.stats.rows_set_aside == 0 and DeadLetters(spool).count() == 0
    (spool / "w0-000000000002.seg").write_bytes(b"".join(frame_bytes(n) for n in range(40, 60)))
    drain(rec)  # and recording goes on as before
    assert_exact(store, set(range(60)))


def damage(frames: list[bytes], how: dict[int, Callable[[bytes], bytes]]) -> tuple[bytes, list[bytes]]:
    """The frames as one segment, some damaged; and the damaged frames, in order."""
    damaged = []
    for i, fn in sorted(how.items()):
        frames[i] = fn(frames[i])
        damaged.append(frames[i])
    return b"".join(frames), damaged


def flip(offset: int, bit: int = 0x10) -> Callable[[bytes], bytes]:
    def apply(frame: bytes) -> bytes:
        return frame[:offset] + bytes([frame[offset] ^ bit]) + frame[offset + 1 :]

    return apply


def cut(frame: bytes) -> bytes:
    return frame[: len(frame) // 2]


async def test_damaged_segments_are_set_aside_and_reading_goes_on(
    store: StoreHandle, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = [frame_bytes(n) for n in range(30)]
    # segment 1: a frame torn in the middle (followed by whole frames), and a torn tail
    one, damaged1 = damage(frames[0:10], {4: cut, 9: cut})
    # segment 2: a flipped bit in a body (checksum), and one in a length field (the frame claims too much)
    two, damaged2 = damage(frames[10:20], {3: flip(len(frames[13]) - 40), 6: flip(9, 0x40)})
    three = b"".join(frames[20:30])  # segment 3: intact
    for seq, data in enumerate((one, two, three), start=1):
        (spool / f"w0-{seq:012d}.seg").write_bytes(data)
    intact = set(range(30)) - {4, 9, 13, 16}
    # the recorder dies once after storing, before its checkpoint: the replay meets the damage again
    state = crash_on_commits(monkeypatch, {1})
    sink = ClickHouseSink(store)
    rec = recorder(spool, sink)
    try:
        drain(rec)
    except Crash:
        rec = recorder(spool, sink)
        drain(rec)
    assert state["crashed"] == 1
    assert_exact(store, intact, set(range(30)))
    assert rec.stats.frames_read == len(intact)
    letters = DeadLetters(spool).all()
    # one letter per damaged place, kept once across the replay, holding exactly the damaged bytes
    assert sorted(d.payload() for d in letters) == sorted(damaged1 + damaged2)
    assert {d.header["stage"] for d in letters} == {"reader"}
    assert rec.status()["damaged_frames"] == 4  # this recorder met all four again, in its replay
    rc, out, err = await run_cli(
        "deadletter", "list", "--json", "--store", f"chdb://{spool.parent / 'unused'}", "--spool", str(spool)
    )
    assert rc == 0, err
    assert out.count('"stage": "reader"') == 4
    assert not list(spool.glob("*.seg"))  # every segment read to its end and deleted
