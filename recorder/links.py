"""The recorder's memory: which tool calls it has seen, and which tool results it has already stored.

Two linkers place a call in its session. The primary one is SQL (``analyzers/steps.sql``): it groups
calls by their stored keys and resolves, by joins, the tool-call ids and response ids a call carries
back to the call that produced them. This module is the fallback's mirror image, kept for speed: it
resolves the same two links while the exchange is built, from memory, and stores the answer with the
record (``llm_calls.link_key``, ``tool_results.producer_call_id``), so a report over millions of rows
needs no join. Where memory has no answer (another recorder's calls, a restart past the warm-up, an
eviction), the field stays empty and the SQL join decides, with the same rule: the golden test checks
that the figures are identical with this memory warm and with it cleared before every exchange.

The memory is bounded (least recently used entries go first) and warmed from the store at start.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from toolwatch.schemas.records import LlmCall, ToolCall, ToolResult

K = TypeVar("K")
V = TypeVar("V")
Key = tuple[str, str]  # (upstream, tool_call_id)
_RESPONSE = "\x00response:"  # response ids share the index with tool-call ids, apart by this prefix
WARM_HOURS = 24


class Lru(OrderedDict[K, V]):
    """A bounded map that forgets its least recently used entries."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def put(self, key: K, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.capacity:
            self.popitem(last=False)


class Links:
    """Tool calls by id -> (the call that produced them, its session key); tool results already stored."""

    def __init__(self, calls_capacity: int = 500_000, results_capacity: int = 1_000_000) -> None:
        self.calls: Lru[Key, tuple[UUID, str]] = Lru(calls_capacity)
        self.results: Lru[Key, None] = Lru(results_capacity)

    # -- lookups, while an exchange is built --------------------------------------------------------
    def session_of(self, upstream: str, previous_response_id: str, first_prior_tool_call_id: str) -> str:
        """The session key of the call this one continues ("" when memory cannot tell).

        The Responses API's ``previous_response_id`` names that call directly; otherwise the earliest
        tool-call id the request resends leads to the call that emitted it."""
        hit = None
        if previous_response_id:
            hit = self.calls.get((upstream, _RESPONSE + previous_response_id))
        if hit is None and first_prior_tool_call_id:
            hit = self.calls.get((upstream, first_prior_tool_call_id))
        return hit[1] if hit is not None else ""

    def producer_of(self, upstream: str, tool_call_id: str) -> UUID | None:
        hit = self.calls.get((upstream, tool_call_id))
        return hit[0] if hit is not None else None

    def stored(self, key: Key) -> bool:
        """Whether a result for this tool call is already recorded (agents resend every result)."""
        return key in self.results

    # -- after an exchange is built -----------------------------------------------------------------
    def remember(
        self, call: LlmCall, tool_calls: list[ToolCall], results: list[ToolResult], resent: Sequence[Key] = ()
    ) -> None:
        """Note what one exchange's records say; ``resent`` results were stored before (kept fresh)."""
        session = call.link_key or call.conv_key
        if call.response_id:
            self.calls.put((call.upstream, _RESPONSE + call.response_id), (call.call_id, session))
        for tc in tool_calls:
            self.calls.put((tc.upstream, tc.tool_call_id), (call.call_id, session))
        for result in results:
            self.results.put((result.upstream, result.tool_call_id), None)
        for key in resent:
            if key in self.results:
                self.results.move_to_end(key)

    # -- start-up -----------------------------------------------------------------------------------
    def warm(self, query: Callable[[str, dict[str, Any]], Sequence[Sequence[Any]]], hours: int = WARM_HOURS) -> None:
        """Fill memory from the store's last ``hours``, so a restarted recorder links as before.

        ``query(sql, parameters)`` returns rows."""
        for upstream, tool_call_id in query(
            "SELECT upstream, tool_call_id FROM tool_results WHERE ts > now() - toIntervalHour({h:UInt32})"
            " ORDER BY ts LIMIT {n:UInt32}",
            {"h": hours, "n": self.results.capacity},
        ):
            self.results.put((upstream, tool_call_id), None)
        rows = query(
            "SELECT upstream, tool_call_id, call_id, conv_key FROM tool_calls"
            " WHERE ts > now() - toIntervalHour({h:UInt32}) ORDER BY ts DESC LIMIT {n:UInt32}",
            {"h": hours, "n": self.calls.capacity},
        )
        for upstream, tool_call_id, call_id, key in reversed(list(rows)):
            self.calls.put((upstream, tool_call_id), (call_id, key))
