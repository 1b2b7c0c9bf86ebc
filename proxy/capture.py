"""What the forwarder keeps of one exchange while it streams through, and the ``Exchange`` it becomes.

Nothing here parses a body. The capture keeps bytes up to the parse limit and forgets them all once a
body passes it (the recorder then records the call as ``too_large``): memory per direction is bounded by
``parse_limit``. ``FinalEvent`` only looks for the bytes that end a provider's stream, so an answer whose
last event reached the agent is not called aborted when the connection closes afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from toolwatch.proxy.headers import Tracing
from toolwatch.proxy.uuid7 import uuid7
from toolwatch.schemas.exchange import Exchange
from toolwatch.schemas.text import safe_map, safe_opt, safe_text
from toolwatch.schemas.vocab import ApiFlavor, Outcome

# The events that end a stream: OpenAI Chat Completions, Anthropic Messages, OpenAI Responses (done,
# failed or incomplete), and Gemini (its last chunk carries the finish reason).
FINAL_MARKERS = (
    b"data: [DONE]",
    b"message_stop",
    b"response.completed",
    b"response.failed",
    b"response.incomplete",
    b'"finishReason"',
)
_TAIL = max(len(m) for m in FINAL_MARKERS) - 1


@dataclass
class Capture:
    """Bytes kept for the recorder, up to ``limit``; past it, nothing is kept and the rest only counted."""

    limit: int
    parts: list[bytes] = field(default_factory=list)
    kept: int = 0
    seen: int = 0
    truncated: bool = False

    def add(self, chunk: bytes) -> None:
        self.seen += len(chunk)
        if self.truncated:
            return
        if self.kept + len(chunk) > self.limit:
            self.truncated = True
            self.parts = []  # released now, not when the exchange ends
            self.kept = 0
            return
        self.parts.append(chunk)
        self.kept += len(chunk)

    def data(self) -> bytes:
        return b"" if self.truncated else b"".join(self.parts)


class FinalEvent:
    """Watches a stream's chunks for the event that ends it (split across chunks too)."""

    def __init__(self) -> None:
        self.seen = False
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        if self.seen:
            return
        window = self._tail + chunk
        self.seen = any(marker in window for marker in FINAL_MARKERS)
        self._tail = window[-_TAIL:]


@dataclass
class State:
    """What the forwarder learned about one exchange, turned into an ``Exchange`` at the end."""

    upstream: str
    upstream_api: ApiFlavor
    method: str
    path: str
    tracing: Tracing
    started: float
    started_at: datetime
    request: Capture
    response: Capture
    key_fingerprint: str = ""
    traceparent: str = ""
    status: int = 0
    outcome: Outcome = "ok"
    error: str | None = None
    ttfb: float | None = None
    sending: float = 0.0  # perf_counter when the upstream request was started
    answered: float = 0.0  # perf_counter when the upstream's headers (or its failure) came back
    finished: float = 0.0
    request_content_type: str | None = None
    response_content_type: str | None = None
    response_content_encoding: str | None = None
    recorded_headers: dict[str, str] = field(default_factory=dict)
    final: FinalEvent = field(default_factory=FinalEvent)
    answering: bool = False  # the answer's status and headers went out
    recorded: bool = False

    def ended_by_client(self) -> None:
        """The agent went away: an abort, unless the answer's final event had already reached it."""
        if not self.final.seen and self.outcome == "ok":
            self.outcome, self.error = "client_aborted", "client disconnected"

    def exchange(self) -> Exchange:
        """The finished exchange. Strings from the wire are made safe here; forwarded bytes never are."""
        self.finished = time.perf_counter()
        # model_construct: every field is built here from typed state, so validation would only cost time
        return Exchange.model_construct(
            id=uuid7(),
            started_at=self.started_at,
            upstream=self.upstream,
            api=self.upstream_api,
            method=safe_text(self.method),
            path=safe_text(self.path),
            status=self.status,
            outcome=self.outcome,
            error=safe_opt(self.error),
            latency_ms=(self.finished - self.started) * 1000.0,
            ttfb_ms=None if self.ttfb is None else self.ttfb * 1000.0,
            request_content_type=safe_opt(self.request_content_type),
            response_content_type=safe_opt(self.response_content_type),
            response_content_encoding=safe_opt(self.response_content_encoding),
            request_size=self.request.seen,
            response_size=self.response.seen,
            request_truncated=self.request.truncated,
            response_truncated=self.response.truncated,
            session_id=safe_opt(self.tracing.session_id),
            agent=safe_opt(self.tracing.agent),
            user_id=safe_opt(self.tracing.user_id),
            properties=safe_map(self.tracing.properties),
            response_headers=safe_map(self.recorded_headers),
            key_fingerprint=self.key_fingerprint,
            traceparent=safe_text(self.traceparent),
        )
