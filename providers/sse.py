"""Incremental Server-Sent-Events decoder (WHATWG "event stream interpretation").

``SSEDecoder.feed`` takes bytes split anywhere and returns the events completed by them; ``flush`` is
called once at the end of the stream. Splitting a stream differently never changes the events:

- lines end in CRLF, LF or CR; a CR that ends one chunk and an LF that starts the next are one line end;
- each line is decoded as UTF-8 only once it is complete, so a character split across chunks survives
  (invalid bytes become U+FFFD, never an exception);
- a line longer than ``max_line_bytes`` is dropped without being held in memory, counted in
  ``dropped_lines``, and the event it belonged to is discarded (counted in ``dropped_events``), since an
  event missing one of its data lines would be silently wrong. The event's joined data is bounded by the
  same limit.

The recorder hands a whole stream to ``feed`` at once: when a chunk has no CR and nothing is carried over
from the last one, its complete lines are split and decoded in one C-speed pass each (UTF-8 decoding
resynchronises at every newline byte, so the text is the same as line by line), and events come out as
plain tuples to ``events_of``. Anything else takes the line-by-line path; both give the same events.

One deliberate departure from the standard: the WHATWG algorithm discards an event that the end of the
stream interrupts before its blank line. ``flush`` dispatches it instead and sets ``unterminated_event``:
a recorder would rather keep the upstream's last event (whose JSON still has to parse) and say the
stream ended early than lose it silently. The official OpenAI and Anthropic SDKs drop such an event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_LINE_BYTES", "SSEDecoder", "SSEEvent"]

DEFAULT_MAX_LINE_BYTES = 32 * 1024 * 1024

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = "\ufeff"


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event. ``id`` is the stream's last event id at dispatch time (it persists)."""

    event: str
    data: str
    id: str | None = None


class SSEDecoder:
    """Pure, incremental SSE decoder; see the module docstring for what it promises."""

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self.dropped_lines = 0
        self.dropped_events = 0
        self.unterminated_event = False
        self._pending = bytearray()  # bytes of the current, not yet terminated line
        self._discarding = False  # the current line is over the limit; skip to its end
        self._skip_lf = False  # the previous chunk ended in CR: an LF starting the next one is its pair
        self._first_line = True
        self._event_type = ""
        self._data: list[str] = []
        self._data_size = 0
        self._event_spoiled = False
        self._last_id: str | None = None

    def clean(self) -> bool:
        """Nothing is carried over from earlier chunks: the next events come from the next chunk alone."""
        return not self._pending and not self._data and not self._event_spoiled

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for a line not yet ended; never more than ``max_line_bytes``."""
        return len(self._pending)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume bytes; return the events whose terminating blank line they contained."""
        return [SSEEvent(*event) for event in self.events_of(chunk)]

    def events_of(self, chunk: bytes) -> list[tuple[str, str, str | None]]:
        """``feed``, with each event as an ``(event, data, id)`` tuple."""
        if (
            not self._pending
            and not self._discarding
            and not self._skip_lf
            and len(chunk) <= self.max_line_bytes
            and b"\r" not in chunk
        ):
            return self._whole_lines(chunk)
        return self._by_line(chunk)

    def _whole_lines(self, chunk: bytes) -> list[tuple[str, str, str | None]]:
        """The fast path (see the module docstring): no CR, nothing pending, no line over the limit."""
        events: list[tuple[str, str, str | None]] = []
        end = chunk.rfind(b"\n")
        if end < 0:
            self._pending += chunk
            return events
        if end + 1 < len(chunk):
            self._pending += chunk[end + 1 :]
        text = chunk[:end].decode("utf-8", errors="replace")
        if self._first_line:
            self._first_line = False
            if text.startswith(_BOM):
                text = text[1:]
        if self._event_type or self._data or self._data_size or self._event_spoiled:
            self._lines(text.split("\n"), events)  # an event began in an earlier chunk
            return events
        # state is clear at each blank line: an event is a block between two, and most blocks are one
        # "data" line, or an "event" line then one "data" line
        blocks = text.split("\n\n")
        for block in blocks[:-1]:  # each ended by a blank line (the last one is not, yet)
            if block.startswith("data:") and "\n" not in block:
                events.append(("message", block[6:] if block.startswith("data: ") else block[5:], self._last_id))
                continue
            if block.startswith("event:"):
                head, newline, rest = block.partition("\n")
                if newline and rest.startswith("data:") and "\n" not in rest:
                    name = head[7:] if head.startswith("event: ") else head[6:]
                    value = rest[6:] if rest.startswith("data: ") else rest[5:]
                    events.append((name or "message", value, self._last_id))
                    continue
            self._lines([*block.split("\n"), ""], events)
        self._lines(blocks[-1].split("\n"), events)
        return events

    def _lines(self, lines: list[str], events: list[tuple[str, str, str | None]]) -> None:
        """Whole decoded lines, none over the limit, in order."""
        for line in lines:
            if line.startswith("data:"):  # most lines: the field name is "data" exactly
                name, value = "data", line[6:] if line.startswith("data: ") else line[5:]
            elif not line:
                if self._event_spoiled:
                    self.dropped_events += 1
                elif self._data:
                    events.append((self._event_type or "message", "\n".join(self._data), self._last_id))
                if self._event_type or self._data or self._data_size or self._event_spoiled:
                    self._event_type, self._data, self._data_size, self._event_spoiled = "", [], 0, False
                continue
            elif line[0] == ":":
                continue
            else:
                name, colon, value = line.partition(":")
                if colon and value[:1] == " ":
                    value = value[1:]
            self._field(name, value)

    def _by_line(self, chunk: bytes) -> list[tuple[str, str, str | None]]:
        events: list[tuple[str, str, str | None]] = []
        if not chunk:
            return events
        start = 0
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                start = 1
        for match in _LINE_END.finditer(chunk, start):
            end = match.start()
            if self._discarding:
                self._discarding = False
            elif self._pending:
                self._pending += chunk[start:end]
                self._line(bytes(self._pending), events)
                self._pending.clear()
            else:
                self._line(chunk[start:end], events)
            start = match.end()
            if match.group() == b"\r" and start == len(chunk):
                self._skip_lf = True
        if start < len(chunk) and not self._discarding:
            self._pending += chunk[start:]
            if len(self._pending) > self.max_line_bytes:
                self._pending.clear()
                self._drop_line()
                self._discarding = True
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: finish an unterminated last line and dispatch an event left without its
        blank line (see the module docstring). The decoder is reset for reuse afterwards."""
        return [SSEEvent(*event) for event in self.flush_events()]

    def flush_events(self) -> list[tuple[str, str, str | None]]:
        """``flush``, with each event as an ``(event, data, id)`` tuple."""
        events: list[tuple[str, str, str | None]] = []
        if self._pending:
            self._line(bytes(self._pending), events)
            self._pending.clear()
        self._discarding = False
        self._skip_lf = False
        if self._data or self._event_spoiled:
            self.unterminated_event = True
            self._dispatch(events)
        self._event_type = ""
        return events

    def notes(self) -> list[str]:
        """Problems worth recording once the stream is over (for a parser's ``errors``)."""
        notes = []
        if self.unterminated_event:
            notes.append("the last event was not followed by a blank line")
        if self.dropped_lines:
            notes.append(f"{self.dropped_lines} over-long SSE line(s) dropped")
        return notes

    def _drop_line(self) -> None:
        self.dropped_lines += 1
        self._event_spoiled = True

    def _line(self, raw: bytes, events: list[tuple[str, str, str | None]]) -> None:
        if len(raw) > self.max_line_bytes:
            self._drop_line()
            return
        line = raw.decode("utf-8", errors="replace")
        if self._first_line:
            self._first_line = False
            if line.startswith(_BOM):
                line = line[1:]
        if not line:
            self._dispatch(events)
            return
        if line[0] == ":":
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        self._field(name, value)

    def _field(self, name: str, value: str) -> None:
        """One field of the event being read; "retry" and unknown fields are ignored, as the standard says."""
        if name == "data":
            self._data_size += len(value) + 1
            if self._data_size > self.max_line_bytes:
                self._event_spoiled = True
                self._data.clear()
            else:
                self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value

    def _dispatch(self, events: list[tuple[str, str, str | None]]) -> None:
        if self._event_spoiled:
            self.dropped_events += 1
        elif self._data:
            events.append((self._event_type or "message", "\n".join(self._data), self._last_id))
        self._event_type = ""
        self._data = []
        self._data_size = 0
        self._event_spoiled = False
