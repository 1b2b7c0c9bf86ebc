"""Records stored in ClickHouse, one model per table.

Every record id is derived from the exchange id (a UUIDv7 minted by the proxy), so parsing the same spool
frame twice yields the same ids and a retried insert can be deduplicated.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from toolwatch.schemas.vocab import ApiFlavor, Endpoint, MalformedKind, Outcome, ParseStatus


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)

    @classmethod
    def trusted(cls, values: dict[str, Any]) -> Self:
        """The record of ``values`` as they are: every field, in declaration order, each already of its
        field's type. Nothing is validated or copied: the recorder's hot path builds them so (its tests
        check that validating such a record again changes nothing), everything else validates."""
        record = cls.__new__(cls)
        object.__setattr__(record, "__dict__", values)
        object.__setattr__(record, "__pydantic_fields_set__", set(values))
        object.__setattr__(record, "__pydantic_extra__", None)
        object.__setattr__(record, "__pydantic_private__", None)
        return record


class LlmCall(_Record):
    """One LLM call: a request and its response (or its failure)."""

    call_id: UUID
    ts: datetime
    upstream: str
    api: ApiFlavor
    endpoint: Endpoint
    method: str
    path: str
    model_requested: str | None = None
    model_returned: str | None = None
    model: str  # the returned model, else the requested one, else ""
    deployment: str = ""  # the Azure OpenAI deployment ("" for other APIs)
    stream: bool = False
    status: int = 0
    outcome: Outcome = "ok"
    error: str | None = None
    parse_status: ParseStatus = "ok"
    parse_error: str | None = None
    finish_reason: str | None = None
    response_id: str | None = None
    input_tokens: int | None = None  # uncached input
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float = 0.0
    ttfb_ms: float | None = None
    request_bytes: int = 0
    response_bytes: int = 0
    declared_tools: list[str] = Field(default_factory=list)
    tool_schemas: list[str] = Field(default_factory=list)  # JSON Schema text per declared tool, "" if none
    tool_call_count: int = 0
    tool_result_count: int = 0
    prior_tool_call_ids: list[str] = Field(default_factory=list)
    message_count: int = 0
    text_chars: int = 0
    session_id: str = ""
    agent: str = ""
    user_id: str = ""
    properties: dict[str, str] = Field(default_factory=dict)
    request_id: str = ""  # the upstream's request id header
    conv_key: str = ""  # session key from the conversation's opening ("" when it cannot be placed)
    opening_key: str = ""  # system prompt and first user message only
    first_prior_tool_call_id: str = ""  # the earliest tool-call id the request carries
    previous_response_id: str = ""
    malformed_count: int = 0
    malformed_kinds: list[MalformedKind] = Field(default_factory=list)  # one entry per malformed tool call
    tool_sigs: list[int] = Field(default_factory=list)  # hash of name and canonical arguments, per tool call
    link_key: str = ""  # session key of the call that produced the earliest tool-call id carried
    traceparent: str = ""  # the agent's W3C trace context, if it sent one
    request_hash: int = 0  # 64-bit hash of the request body: a retry sends the same bytes
    key_fingerprint: str = ""  # salted HMAC of the API key the request carried (the key itself never)


class ToolCall(_Record):
    """A tool call the model emitted. ``arguments`` is null when ``raw_arguments`` is not a JSON object."""

    tool_call_uid: UUID
    call_id: UUID
    ts: datetime
    upstream: str
    model: str
    session_id: str = ""
    agent: str = ""
    call_index: int
    tool_call_id: str
    name: str
    raw_arguments: str
    arguments: str | None = None  # compact JSON text of the parsed object
    malformed_kind: MalformedKind | Literal[""] = ""  # the first kind that applies; "" when well formed
    malformed_detail: str = ""
    conv_key: str = ""


class ToolResult(_Record):
    """A tool result carried back by a request, recorded once per tool_call_id."""

    result_uid: UUID
    call_id: UUID  # the first request that carried it
    ts: datetime
    upstream: str
    session_id: str = ""
    agent: str = ""
    tool_call_id: str
    content: str  # truncated to the configured size
    content_bytes: int  # size before truncation
    truncated: bool = False
    is_error: bool | None = None  # the provider's explicit flag (Anthropic is_error), else null
    error_rule: str = ""  # the outcome rule that fired ("" = ok): an ErrorRule or a configured rule name
    classified_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    producer_call_id: UUID = UUID(int=0)  # the call that emitted the tool call (zero: resolved in SQL)


class Body(_Record):
    """Full request and response bodies, kept for a shorter TTL than the records."""

    call_id: UUID
    ts: datetime
    request_body: bytes
    response_body: bytes
    request_truncated: bool = False
    response_truncated: bool = False
