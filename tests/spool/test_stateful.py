"""The spool against a simple model, driven by Hypothesis: frames appended, polled, acknowledged
(committed) and replayed (polled again by a reader restarted from its checkpoint), with writers sealing,
restarting cleanly and dying with a segment left open.

The model: the list of appended frame ids, how many the reader has acknowledged, and how many it has
polled. A reader returns exactly the next frames in append order, never skips one, returns an
acknowledged frame never again, and after a restart returns every frame it had not acknowledged.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from toolwatch.schemas.exchange import Exchange
from toolwatch.spool.reader import SpoolReader
from toolwatch.spool.writer import SpoolWriter


def exchange(n: int) -> Exchange:
    return Exchange(
        id=uuid.UUID(int=n + 1),
        started_at=datetime(2025, 1, 1, tzinfo=UTC),
        upstream="openai",
        api="openai",
        method="POST",
        path="/v1/chat/completions",
    )


class SpoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.directory = Path(tempfile.mkdtemp(prefix="spool-model-"))
        self.writer = self._new_writer()
        self.reader = SpoolReader(self.directory)
        self.appended: list[int] = []
        self.acked = 0
        self.polled = 0

    def _new_writer(self) -> SpoolWriter:
        writer = SpoolWriter(self.directory, cap_bytes=1 << 30, segment_bytes=4096, segment_max_age=3600.0)
        self.loop.run_until_complete(writer.start())
        return writer

    def teardown(self) -> None:
        self.loop.run_until_complete(self.writer.close())
        self.loop.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    @rule(size=st.integers(min_value=0, max_value=3000))
    def append(self, size: int) -> None:
        n = len(self.appended)
        assert self.writer.append(exchange(n), b"q" * size, b"r" * (size // 2))
        self.appended.append(n)

    @rule()
    def seal(self) -> None:
        self.writer._seal()

    @rule(budget=st.integers(min_value=1, max_value=20_000))
    def poll(self, budget: int) -> None:
        got = [f.exchange.id.int - 1 for f in self.reader.poll(max_bytes=budget).frames]
        assert got == self.appended[self.polled : self.polled + len(got)]
        self.polled += len(got)

    @rule()
    def commit(self) -> None:
        self.reader.commit()
        self.acked = self.polled

    @rule()
    def restart_reader(self) -> None:
        self.reader = SpoolReader(self.directory)
        self.polled = self.acked  # what was not acknowledged is replayed

    @rule()
    def restart_writer(self) -> None:
        self.loop.run_until_complete(self.writer.close())
        self.writer = self._new_writer()

    @rule()
    def writer_dies(self) -> None:
        """A SIGKILL: nothing closed, the segment left open; the next writer seals it."""
        task = self.writer._task
        if task is not None:
            task.cancel()
            self.loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        self.writer = self._new_writer()

    @precondition(lambda self: self.polled < len(self.appended))
    @rule()
    def drain(self) -> None:
        got = []
        for _ in range(len(self.appended) + 2):
            got += [f.exchange.id.int - 1 for f in self.reader.poll().frames]
        assert got == self.appended[self.polled :]
        self.polled = len(self.appended)

    @invariant()
    def nothing_is_damaged(self) -> None:
        assert self.reader.damaged == 0

    @invariant()
    def committed_frames_are_not_pending(self) -> None:
        assert self.acked <= self.polled <= len(self.appended)


TestSpoolModel = SpoolMachine.TestCase
TestSpoolModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None, derandomize=True)
