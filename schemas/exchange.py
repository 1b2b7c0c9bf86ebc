"""The exchange: what the proxy hands to the recorder when one proxied request ends.

It travels as one spool frame: this metadata (JSON) plus the raw request and response bytes. It never
holds a credential: the forwarder copies only headers on an allow-list of non-secret names.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from toolwatch.schemas.vocab import ApiFlavor, Outcome


class Exchange(BaseModel):
    """Metadata of one proxied request. Times are UTC; durations are milliseconds."""

    model_config = ConfigDict(frozen=True)

    id: UUID  # UUIDv7 minted by the proxy; every record of this exchange derives its id from it
    started_at: datetime
    upstream: str
    api: ApiFlavor
    method: str
    path: str  # the path below the upstream mount, without the query string
    status: int = 0  # 0 when no response came back
    outcome: Outcome = "ok"
    error: str | None = None
    latency_ms: float = 0.0  # request start to last response byte (or to the failure)
    ttfb_ms: float | None = None  # request start to the first response body byte
    request_content_type: str | None = None
    response_content_type: str | None = None
    response_content_encoding: str | None = None
    request_size: int = 0  # bytes seen, including those not kept
    response_size: int = 0
    request_truncated: bool = False  # body larger than the parse limit: only a prefix is kept
    response_truncated: bool = False
    session_id: str | None = None
    agent: str | None = None
    user_id: str | None = None
    properties: dict[str, str] = Field(default_factory=dict)
    response_headers: dict[str, str] = Field(default_factory=dict)  # non-secret provider headers
    traceparent: str = ""  # the agent's W3C trace context, forwarded unchanged (toolwatch's spans join it)
    key_fingerprint: str = ""  # salted HMAC of the API key the request carried ("" = none): never the key
