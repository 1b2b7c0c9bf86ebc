"""The Exchange: the metadata the proxy hands to the recorder, as JSON inside a spool frame."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from toolwatch.schemas.exchange import Exchange

REQUIRED = {
    "id": "01994d0a-4c1a-7e3b-9f00-0123456789ab",
    "started_at": "2025-09-15T12:00:00.123456Z",
    "upstream": "openai",
    "api": "openai",
    "method": "POST",
    "path": "/v1/chat/completions",
}


def test_defaults_describe_a_call_with_no_response_yet() -> None:
    ex = Exchange.model_validate(REQUIRED)
    assert ex.id == uuid.UUID(REQUIRED["id"])
    assert ex.started_at == datetime(2025, 9, 15, 12, 0, 0, 123456, tzinfo=UTC)
    assert (ex.status, ex.outcome, ex.error) == (0, "ok", None)
    assert (ex.latency_ms, ex.ttfb_ms) == (0.0, None)
    assert (ex.request_size, ex.response_size) == (0, 0)
    assert (ex.request_truncated, ex.response_truncated) == (False, False)
    assert (ex.session_id, ex.agent, ex.user_id) == (None, None, None)
    assert ex.properties == {} and ex.response_headers == {}
    assert ex.response_content_encoding is None


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_required_fields(missing: str) -> None:
    data = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(ValidationError, match=missing):
        Exchange.model_validate(data)


def test_json_round_trip_keeps_everything() -> None:
    ex = Exchange(
        id=uuid.uuid4(),
        started_at=datetime(2025, 9, 15, 14, 0, tzinfo=timezone(timedelta(hours=2))),
        upstream="my-glm",
        api="openai",
        method="POST",
        path="/api/paas/v4/chat/completions",
        status=429,
        outcome="http_error",
        error="rate limited",
        latency_ms=12.5,
        ttfb_ms=3.25,
        request_content_type="application/json",
        response_content_type="text/event-stream",
        response_content_encoding="gzip",
        request_size=10,
        response_size=20,
        request_truncated=True,
        session_id="s",
        agent="a",
        user_id="u",
        properties={"env": "ci", "東京": "☔"},
        response_headers={"retry-after": "3"},
    )
    again = Exchange.model_validate_json(ex.model_dump_json())
    assert again == ex
    assert again.started_at.utcoffset() == timedelta(hours=2)


def test_unknown_fields_from_a_newer_proxy_are_ignored() -> None:
    data = {**REQUIRED, "future_field": 1}
    assert Exchange.model_validate_json(json.dumps(data)).upstream == "openai"


def test_frozen() -> None:
    ex = Exchange.model_validate(REQUIRED)
    with pytest.raises(ValidationError):
        ex.status = 200  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", "not-a-uuid"), ("started_at", "yesterday"), ("status", "two hundred"), ("properties", {"a": 1})],
)
def test_bad_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        Exchange.model_validate({**REQUIRED, field: value})


def test_no_field_can_carry_request_headers() -> None:
    # credentials travel in request headers; the exchange has no place for them
    assert not any("request_header" in name or "auth" in name for name in Exchange.model_fields)
