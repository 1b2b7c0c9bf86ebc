"""What every provider parser produces, and the protocol it follows.

Parsers are pure: they take bytes and give frozen records back. They never touch a socket, a file or a
clock, so they can be fed a recorded stream split at any byte offset. They never raise on bad input:
what cannot be understood is skipped and noted in ``errors`` (and ``skipped`` counts unknown events).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ToolDecl:
    """A tool the request declares. ``schema_json`` is the JSON Schema text (compact), or None."""

    name: str
    schema_json: str | None = None


@dataclass(frozen=True)
class ToolResultIn:
    """A tool result carried back by a request (OpenAI ``role: tool`` message, Anthropic ``tool_result``)."""

    tool_call_id: str
    content: str
    is_error: bool | None = None  # an explicit flag from the provider (Anthropic ``is_error``), else None


@dataclass(frozen=True)
class ParsedRequest:
    model: str | None = None
    stream: bool = False
    tools: tuple[ToolDecl, ...] = ()
    tool_results: tuple[ToolResultIn, ...] = ()
    # tool-call ids of earlier assistant turns the request resends (links a request to earlier calls)
    prior_tool_call_ids: tuple[str, ...] = ()
    message_count: int = 0
    error: str | None = None  # set when the body is not JSON or not understood; fields above are best effort
    # The opening of the conversation, which identifies a session without any header: the system prompt
    # and the first user message as plain text (text parts joined with "\n"; cache markers, images and
    # key order do not matter), and the first assistant reply if the request carries one.
    system_text: str = ""
    first_user_text: str = ""
    first_reply_text: str | None = None  # None when the request has no assistant turn yet
    first_reply_tool_ids: tuple[str, ...] = ()  # tool-call ids of that first assistant reply
    previous_response_id: str | None = None  # OpenAI Responses API link to the previous call


@dataclass(frozen=True)
class ToolCallOut:
    """A tool call the model emitted. ``raw_arguments`` is the argument text exactly as produced."""

    index: int
    id: str
    name: str
    raw_arguments: str


@dataclass(frozen=True)
class Usage:
    """Token usage normalised across providers. ``input_uncached`` excludes cache reads and writes."""

    input_uncached: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None
    output: int | None = None


@dataclass(frozen=True)
class ParsedResponse:
    model: str | None = None
    response_id: str | None = None
    tool_calls: tuple[ToolCallOut, ...] = ()
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    text: str = ""
    error_type: str | None = None  # provider error object (4xx/5xx bodies, SSE ``error`` events)
    error_message: str | None = None
    complete: bool = False  # a stream reached its terminal event, or a whole JSON body was parsed
    errors: tuple[str, ...] = ()  # parse problems: garbage lines, broken JSON, a stream cut short
    skipped: int = 0  # events or items of kinds the parser does not know


class ResponseParser(Protocol):
    """Incremental response parser: ``feed`` any split of the bytes, then ``finish`` once."""

    def feed(self, chunk: bytes) -> list[ToolCallOut]:
        """Consume bytes; return the tool calls that became complete with them."""
        ...

    def finish(self) -> ParsedResponse:
        """Called once after the last byte (also when the stream broke off)."""
        ...
