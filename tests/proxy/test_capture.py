"""The capture path: no input stops recording. Requests go over real sockets, as raw bytes, so header
values that are not UTF-8 reach toolwatch exactly as an agent (or an upstream) sent them.

Regression: a single ``Toolwatch-Session-Id: caf\\xe9`` (or such a byte in an upstream's response header)
used to kill the spool's flusher task; every later exchange then stayed in memory while ``/healthz``
said ok. Strings are now made safe at capture (U+FFFD), and the spool write is done in place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.raw import RawUpstream, canned, raw_request
from tests.harness import Harness, make_settings

CHAT = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}'
ANSWER = b'{"id": "c1", "object": "chat.completion", "model": "gpt-4o", "choices": []}'


def chat_head(*headers: bytes, path: bytes = b"/openai/v1/chat/completions") -> bytes:
    lines = [b"POST " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Content-Type: application/json"]
    return b"\r\n".join(lines + list(headers))


async def normal(tw: Harness) -> None:
    status, _ = await raw_request(tw.url, chat_head(b"Toolwatch-Session-Id: after"), CHAT)
    assert status == 200


async def test_a_non_utf8_request_header_is_recorded_and_recording_goes_on(tw: Harness) -> None:
    status, _ = await raw_request(
        tw.url,
        chat_head(b"Toolwatch-Session-Id: caf\xe9", b"Toolwatch-Agent: \xff\xfe", b"Toolwatch-Property-Env: pr\xe9"),
        CHAT,
    )
    assert status == 200
    await normal(tw)
    await tw.flush(expect=2)
    rows = tw.rows("SELECT session_id, agent, properties FROM llm_calls ORDER BY ts")
    assert rows[0]["session_id"] == "caf\ufffd" and rows[0]["agent"] == "\ufffd\ufffd"
    assert rows[0]["properties"] == {"Env": "pr\ufffd"}
    assert rows[1]["session_id"] == "after"
    assert tw.spool.healthy and tw.spool.encode_errors == 0


@pytest.fixture
async def odd_upstream() -> AsyncIterator[RawUpstream]:
    headers = [b"Content-Type: application/json", b"X-Request-Id: req-caf\xe9", b"X-Ratelimit-Remaining-Requests: \xff"]
    async with RawUpstream(canned(b"HTTP/1.1 200 OK", headers, ANSWER)) as upstream:
        yield upstream


@pytest.fixture
async def tw_odd(store_path: Path, tmp_path: Path, odd_upstream: RawUpstream) -> AsyncIterator[Harness]:
    h = Harness(make_settings(store_path, tmp_path / "spool", odd_upstream.url))
    await h.start()
    try:
        yield h
    finally:
        await h.close()


async def test_a_non_utf8_response_header_is_recorded_and_recording_goes_on(tw_odd: Harness) -> None:
    for _ in range(2):
        status, _ = await raw_request(tw_odd.url, chat_head(), CHAT)
        assert status == 200
    await tw_odd.flush(expect=2)
    [(n, request_id)] = tw_odd.query("SELECT count(), any(request_id) FROM llm_calls")
    assert n == 2 and request_id == "req-caf\ufffd"
    assert tw_odd.spool.healthy


# -- fuzzing over real sockets: whatever arrives, the proxy answers and keeps recording -----------------

header_value = st.binary(min_size=0, max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b)
hostile_bodies = st.one_of(
    st.binary(max_size=2000),
    st.just(b'{"model": "gpt-4o\\ud800", "n": 1234567890123456789012, "messages": []}'),
    st.just(b"[" * 5000 + b"]" * 5000),
    st.just(b'{"messages": [' + b'{"role": "user", "content": "\\udce9\\ud800"},' * 50 + b"{}]}"),
    st.just(b"\xff\xfe\xfd" * 100),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(session=header_value, prop=header_value, body=hostile_bodies)
async def test_hostile_requests_never_stop_recording(tw: Harness, session: bytes, prop: bytes, body: bytes) -> None:
    before = tw.spool.appended
    status, _ = await raw_request(
        tw.url, chat_head(b"Toolwatch-Session-Id: " + session, b"Toolwatch-Property-X: " + prop), body
    )
    assert status in (200, 400)  # forwarded (the fake answers), or refused by the HTTP parser itself
    await normal(tw)
    assert tw.spool.healthy and tw.spool.encode_errors == 0
    assert tw.spool.appended >= before + 1


async def test_hostile_requests_are_all_stored(tw: Harness) -> None:
    """The same inputs as above, end to end into the store: every answered request is a row."""
    bodies = [b'{"model": "gpt-4o\\ud800", "n": 1234567890123456789012}', b"[" * 5000 + b"]" * 5000, b"\xff\xfe"]
    for body in bodies:
        status, _ = await raw_request(tw.url, chat_head(b"Toolwatch-Session-Id: x\xe9\xff"), body)
        assert status == 200
    await normal(tw)
    await tw.flush(expect=len(bodies) + 1)
    assert tw.query("SELECT count() FROM llm_calls") == [(len(bodies) + 1,)]
    [(model,)] = tw.query(
        "SELECT model_requested FROM llm_calls WHERE session_id != 'after' AND model_requested LIKE 'gpt%'"
    )
    assert model == "gpt-4o\ufffd"
    assert tw.recorder.stats.rows_set_aside == 0 and tw.recorder.stats.write_errors == 0
