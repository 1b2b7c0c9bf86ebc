"""Where the recorder's batches go: a two-method protocol, the batch itself, and an in-memory double.

Batching happens in one place, the recorder loop; a sink only writes what it is handed, one block per
table, and raises when it cannot (the recorder then keeps the batch and retries). Exactly once: every
block carries a deduplication token, ``<batch token>:<table>``, and the tables are created with a
deduplication window, so a block written again (a retry after a failure between tables, a replay after
a crash between the insert and the spool checkpoint) is dropped by the store. ``done`` lists the tables
a batch has written, so a retry starts where the failure was.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from toolwatch.schemas.records import Body, LlmCall, ToolCall, ToolResult

TABLES = ("llm_calls", "tool_calls", "tool_results", "bodies")


@dataclass
class Batch:
    llm_calls: list[LlmCall] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    bodies: list[Body] = field(default_factory=list)
    token: str = ""  # deduplication token of the batch ("" = none)
    done: set[str] = field(default_factory=set)  # tables already written

    def tables(self) -> dict[str, list[Any]]:
        return {
            "llm_calls": list(self.llm_calls),
            "tool_calls": list(self.tool_calls),
            "tool_results": list(self.tool_results),
            "bodies": list(self.bodies),
        }

    def table_token(self, table: str) -> str:
        return f"{self.token}:{table}" if self.token else ""

    def add(self, call: LlmCall, tool_calls: list[ToolCall], results: list[ToolResult], body: Body | None) -> None:
        self.llm_calls.append(call)
        self.tool_calls.extend(tool_calls)
        self.tool_results.extend(results)
        if body is not None:
            self.bodies.append(body)

    def rows(self) -> int:
        return len(self.llm_calls) + len(self.tool_calls) + len(self.tool_results) + len(self.bodies)


class RecordSink(Protocol):
    def write(self, batch: Batch) -> None:
        """Write the tables of ``batch`` not in ``batch.done`` (adding each to it once written)."""
        ...

    def shutdown(self) -> None: ...


class MemorySink:
    """Keeps every written block in memory, dropping a block whose token it has seen, as the store
    does; for tests."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.tokens: set[str] = set()
        self._lock = threading.Lock()

    def write(self, batch: Batch) -> None:
        with self._lock:
            kept = Batch()
            for table, rows in batch.tables().items():
                token = batch.table_token(table)
                if table in batch.done or not rows:
                    continue
                if not token or token not in self.tokens:
                    getattr(kept, table).extend(rows)
                if token:
                    self.tokens.add(token)
                batch.done.add(table)
            self.batches.append(kept)

    def shutdown(self) -> None:
        pass

    def all(self) -> Batch:
        merged = Batch()
        with self._lock:
            for b in self.batches:
                merged.llm_calls += b.llm_calls
                merged.tool_calls += b.tool_calls
                merged.tool_results += b.tool_results
                merged.bodies += b.bodies
        return merged
