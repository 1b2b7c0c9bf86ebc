"""Where the recorder's batches go: a two-method protocol, a ClickHouse writer and an in-memory double.

Batching happens in one place, the recorder loop; a sink only writes what it is handed, all or nothing
per table, and raises when it cannot (the recorder then keeps the batch and retries).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel

from toolwatch.schemas.records import Body, LlmCall, ToolCall, ToolResult


@dataclass
class Batch:
    llm_calls: list[LlmCall] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    bodies: list[Body] = field(default_factory=list)

    def tables(self) -> dict[str, list[BaseModel]]:
        return {
            "llm_calls": list(self.llm_calls),
            "tool_calls": list(self.tool_calls),
            "tool_results": list(self.tool_results),
            "bodies": list(self.bodies),
        }

    def add(self, call: LlmCall, tool_calls: list[ToolCall], results: list[ToolResult], body: Body | None) -> None:
        self.llm_calls.append(call)
        self.tool_calls.extend(tool_calls)
        self.tool_results.extend(results)
        if body is not None:
            self.bodies.append(body)

    def rows(self) -> int:
        return len(self.llm_calls) + len(self.tool_calls) + len(self.tool_results) + len(self.bodies)


class RecordSink(Protocol):
    def write(self, batch: Batch) -> None: ...

    def shutdown(self) -> None: ...


class MemorySink:
    """Keeps every written batch in memory; for tests."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self._lock = threading.Lock()

    def write(self, batch: Batch) -> None:
        with self._lock:
            self.batches.append(batch)

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
