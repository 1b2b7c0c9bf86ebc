"""Header rules: what is stripped before forwarding, what toolwatch reads, and what may be recorded."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from toolwatch.proxy.headers import (
    HOP_BY_HOP,
    Tracing,
    recorded_response_headers,
    response_headers,
    split_request,
)


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


# -- request ---------------------------------------------------------------------------------------


def test_hop_by_hop_and_host_and_length_are_not_forwarded() -> None:
    h = headers(
        ("Host", "127.0.0.1:8787"),
        ("Content-Length", "12"),
        ("Connection", "keep-alive"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("Proxy-Authorization", "Basic c2VjcmV0"),
        ("TE", "trailers"),
        ("Trailer", "X-Checksum"),
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "h2c"),
        ("Authorization", "Bearer sk-test"),
        ("Content-Type", "application/json"),
    )
    out, _ = split_request(h)
    assert list(out.items()) == [("Authorization", "Bearer sk-test"), ("Content-Type", "application/json")]


def test_every_hop_by_hop_name_is_dropped_in_any_case() -> None:
    for name in HOP_BY_HOP:
        out, _ = split_request(headers((name.upper(), "x"), ("X-Keep", "1")))
        assert list(out) == ["X-Keep"], name


def test_headers_named_by_connection_are_dropped() -> None:
    h = headers(
        ("Connection", "close, X-Hop-One"),
        ("Connection", " x-hop-two ,"),
        ("X-Hop-One", "1"),
        ("X-HOP-TWO", "2"),
        ("X-Stays", "3"),
    )
    out, _ = split_request(h)
    assert list(out.items()) == [("X-Stays", "3")]


def test_end_to_end_headers_keep_order_case_and_repeats() -> None:
    h = headers(
        ("x-api-key", "sk-ant"),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "a"),
        ("anthropic-beta", "b"),
        ("Accept-Encoding", "gzip"),
        ("User-Agent", "agent/1.0"),
    )
    out, tracing = split_request(h)
    assert list(out.items()) == list(h.items())
    assert tracing == Tracing()


def test_tracing_headers_are_read_and_stripped() -> None:
    h = headers(
        ("Toolwatch-Session-Id", "sess-1"),
        ("Toolwatch-Agent", "planner"),
        ("Toolwatch-User-Id", "user-1"),
        ("Toolwatch-Property-Env", "ci"),
        ("Toolwatch-Something-New", "x"),
        ("Authorization", "Bearer k"),
    )
    out, tracing = split_request(h)
    assert list(out) == ["Authorization"]
    assert tracing == Tracing(session_id="sess-1", agent="planner", user_id="user-1", properties={"Env": "ci"})


def test_helicone_headers_are_read_and_stripped() -> None:
    h = headers(
        ("Helicone-Session-Id", "hs"),
        ("Helicone-User-Id", "hu"),
        ("Helicone-Property-Team", "search"),
        ("Helicone-Auth", "Bearer sk-helicone-secret"),  # Helicone's own key must not reach the provider
        ("Content-Type", "application/json"),
    )
    out, tracing = split_request(h)
    assert list(out) == ["Content-Type"]
    assert tracing.session_id == "hs" and tracing.user_id == "hu"
    assert tracing.agent is None
    assert tracing.properties == {"Team": "search"}


def test_toolwatch_headers_win_over_helicone_ones() -> None:
    h = headers(("helicone-session-id", "hs"), ("toolwatch-session-id", "ts"), ("helicone-user-id", "hu"))
    _, tracing = split_request(h)
    assert tracing.session_id == "ts"
    assert tracing.user_id == "hu"


def test_empty_toolwatch_value_falls_back_to_helicone() -> None:
    _, tracing = split_request(headers(("Toolwatch-Session-Id", ""), ("Helicone-Session-Id", "hs")))
    assert tracing.session_id == "hs"


def test_properties_from_both_prefixes_first_one_wins() -> None:
    h = headers(
        ("Helicone-Property-Env", "from-helicone"),
        ("Toolwatch-Property-Env", "from-toolwatch"),
        ("toolwatch-property-region", "eu"),
        ("Toolwatch-Property-", "no name"),
    )
    out, tracing = split_request(h)
    assert tracing.properties == {"Env": "from-helicone", "region": "eu"}
    assert len(out) == 0


def test_tracing_header_names_are_case_insensitive() -> None:
    _, tracing = split_request(headers(("TOOLWATCH-AGENT", "a"), ("toolwatch-session-id", "s")))
    assert (tracing.agent, tracing.session_id) == ("a", "s")


def test_input_is_not_modified() -> None:
    raw = CIMultiDict([("Connection", "x"), ("X", "1"), ("Toolwatch-Agent", "a")])
    split_request(raw)
    assert list(raw.items()) == [("Connection", "x"), ("X", "1"), ("Toolwatch-Agent", "a")]


# -- response --------------------------------------------------------------------------------------


def test_response_headers_drop_hop_by_hop_only() -> None:
    h = headers(
        ("Content-Type", "text/event-stream"),
        ("Content-Length", "100"),
        ("Content-Encoding", "gzip"),  # the body is forwarded still encoded
        ("Transfer-Encoding", "chunked"),
        ("Connection", "keep-alive, X-Internal"),
        ("X-Internal", "1"),
        ("Set-Cookie", "__cf_bm=abc"),
        ("x-request-id", "req_1"),
    )
    assert list(response_headers(h).items()) == [
        ("Content-Type", "text/event-stream"),
        ("Content-Length", "100"),  # kept: the answer goes back with its length, never re-chunked
        ("Content-Encoding", "gzip"),
        ("Set-Cookie", "__cf_bm=abc"),
        ("x-request-id", "req_1"),
    ]


def test_recorded_response_headers_are_an_allow_list() -> None:
    h = headers(
        ("X-Request-Id", "req_1"),
        ("request-id", "req_ant"),
        ("openai-processing-ms", "120"),
        ("openai-model", "gpt-4.1"),
        ("Retry-After", "3"),
        ("x-ratelimit-remaining-tokens", "999"),
        ("anthropic-ratelimit-requests-remaining", "49"),
        ("Set-Cookie", "session=secret"),
        ("Authorization", "Bearer sk-upstream"),
        ("x-api-key", "sk-ant-secret"),
        ("openai-organization", "org-secret"),
        ("api-key", "azure-secret"),
        ("Cookie", "a=b"),
        ("Proxy-Authenticate", "Basic"),
        ("WWW-Authenticate", "Bearer"),
        ("Content-Type", "application/json"),
        ("x-request-id-secret-suffix", "no"),
    )
    assert recorded_response_headers(h) == {
        "x-request-id": "req_1",
        "request-id": "req_ant",
        "openai-processing-ms": "120",
        "openai-model": "gpt-4.1",
        "retry-after": "3",
        "x-ratelimit-remaining-tokens": "999",
        "anthropic-ratelimit-requests-remaining": "49",
    }


def test_recorded_names_are_lower_case() -> None:
    assert recorded_response_headers(headers(("X-RateLimit-Limit-Requests", "10"))) == {
        "x-ratelimit-limit-requests": "10"
    }


def test_nothing_recorded_from_nothing() -> None:
    assert recorded_response_headers(headers()) == {}
