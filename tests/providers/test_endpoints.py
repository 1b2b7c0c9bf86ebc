"""What every registered endpoint's parsers promise, checked on each endpoint's wire samples in
tests/fixtures/<folder>/ (``helpers.FOLDERS``; each folder's README says what its samples are).

Any split of a response gives the same result as the whole, line ends do not matter, random and mutated
input never raises, a request resending a reply reads it as its response did, and the official SDK reads
every sample as we do. What each sample contains is checked, value by value, in the provider's own test
module; hostile input (deep nesting, lone surrogates, huge bodies) in ``test_endpoints_hostile``.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolwatch.providers import registry
from toolwatch.providers.accumulate import BufferedJSONParser
from toolwatch.providers.base import ParsedRequest

from .helpers import (
    FIXTURES,
    FOLDERS,
    bytewise,
    distinct_parsers,
    mutate,
    mutate_stream,
    parser_for,
    replay,
    request_samples,
    response_samples,
    sample,
    split_at,
    two_piece_splits,
    wire_json,
)
from .sdks import SDKS

FUZZ = settings(max_examples=150, deadline=None)
MUTATE = settings(max_examples=100, deadline=None)  # each example parses a whole sample three times
ENDPOINTS = list(registry.ENDPOINTS)

PARSERS = distinct_parsers()
# endpoints whose streams have an end marker (data: [DONE], message_stop, response.completed): Gemini's do not
END_MARKED = ("chat_completions", "messages", "responses")


def cases(kind: str) -> list[Any]:
    found = [(e, n) for e in ENDPOINTS for n in response_samples(e) if kind != "sse" or n.endswith(".sse")]
    return [pytest.param(e, n, id=f"{e}-{n}") for e, n in found]


def buffered(endpoint: str) -> bool:
    """A plain JSON body parser (not Gemini's, which also reads a JSON array of chunks)."""
    return issubclass(registry.ENDPOINTS[endpoint].json_parser, BufferedJSONParser)


def test_every_endpoint_has_samples_and_every_sample_is_read() -> None:
    assert set(FOLDERS) == set(registry.ENDPOINTS)
    used: set[tuple[str, str]] = set()
    for endpoint, folder in FOLDERS.items():
        requests, responses = request_samples(endpoint), response_samples(endpoint)
        assert requests and responses, endpoint
        used |= {(folder, name) for name in requests + responses}
    on_disk = {(p.parent.name, p.name) for f in set(FOLDERS.values()) for p in (FIXTURES / f).glob("*.*")}
    assert used == {(folder, name) for folder, name in on_disk if not name.endswith(".md")}
    for endpoint, sdk in SDKS.items():
        assert sdk.differs <= {n for e in ENDPOINTS if FOLDERS[e] == FOLDERS[endpoint] for n in response_samples(e)}


# --- any split of a response gives the same result ------------------------------------------------


@pytest.mark.parametrize(("endpoint", "name"), cases("all"))
def test_split_at_every_offset_and_bytewise(endpoint: str, name: str) -> None:
    data, factory = sample(endpoint, name), parser_for(endpoint, name)
    expected = replay(factory, [data])
    for pieces in two_piece_splits(data):
        assert replay(factory, pieces) == expected, len(pieces[0])
    assert replay(factory, bytewise(data)) == expected


@pytest.mark.parametrize(("endpoint", "name"), cases("sse"))
def test_the_other_line_end_gives_the_same_result(endpoint: str, name: str) -> None:
    data, factory = sample(endpoint, name), parser_for(endpoint, name)
    other = data.replace(b"\r\n", b"\n") if b"\r\n" in data else data.replace(b"\n", b"\r\n")
    assert replay(factory, split_at(other, range(0, len(other), 7))) == replay(factory, [data])


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@FUZZ
@given(data=st.data(), cuts=st.lists(st.integers(0, 13_000), max_size=12))
def test_random_splits(endpoint: str, data: st.DataObject, cuts: list[int]) -> None:
    name = data.draw(st.sampled_from(response_samples(endpoint)))
    raw, factory = sample(endpoint, name), parser_for(endpoint, name)
    assert replay(factory, split_at(raw, cuts)) == replay(factory, [raw])


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if any(n.endswith(".sse") for n in response_samples(e))])
@FUZZ
@given(data=st.data(), garbage=st.binary(max_size=300), cuts=st.lists(st.integers(0, 13_000)))
def test_garbage_after_a_stream_never_raises(
    endpoint: str, data: st.DataObject, garbage: bytes, cuts: list[int]
) -> None:
    name = data.draw(st.sampled_from([n for n in response_samples(endpoint) if n.endswith(".sse")]))
    raw, factory = sample(endpoint, name), parser_for(endpoint, name)
    _, clean = replay(factory, [raw])
    reported, result = replay(factory, split_at(raw + garbage, cuts))
    if clean.complete and endpoint in END_MARKED:  # everything after the end marker is ignored
        assert result.tool_calls == clean.tool_calls and result.usage == clean.usage
        assert reported == list(clean.tool_calls) and result.complete


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("endpoint", PARSERS)
@FUZZ
@given(data=st.binary(max_size=500), cuts=st.lists(st.integers(0, 500), max_size=8))
def test_random_bytes_in_any_split_never_raise(endpoint: str, streamed: bool, data: bytes, cuts: list[int]) -> None:
    factory = functools.partial(registry.response_parser, endpoint, streamed)
    assert replay(factory, split_at(data, cuts)) == replay(factory, [data])


# --- random and mutated JSON never raises -----------------------------------------------------------


@pytest.mark.parametrize("endpoint", PARSERS)
@MUTATE
@given(data=st.data())
def test_any_json_never_raises(endpoint: str, data: st.DataObject) -> None:
    value = data.draw(wire_json(endpoint))
    raw = json.dumps(value).encode()
    entry = registry.ENDPOINTS[endpoint]
    assert isinstance(entry.parse_request(raw), ParsedRequest)
    result = replay(entry.json_parser, [raw])[1]
    if buffered(endpoint):  # a JSON body is complete when it is an object
        assert result.complete == isinstance(value, dict)
    replay(entry.json_parser, [b"[" + raw + b"," + raw + b"]"])
    replay(entry.stream_parser, [b"data: " + raw + b"\n\n"])
    replay(entry.stream_parser, [b"data: " + raw + b"\r\n\r\n"])


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@MUTATE
@given(data=st.data())
def test_mutated_samples_never_raise(endpoint: str, data: st.DataObject) -> None:
    """Each sample with random subtrees replaced by random values of the API's own words: every place a
    parser reads is, in some example, of the wrong type or missing its contents."""
    values = wire_json(endpoint)
    request = json.loads(sample(endpoint, data.draw(st.sampled_from(request_samples(endpoint)))))
    parse_request = registry.ENDPOINTS[endpoint].parse_request
    assert isinstance(parse_request(json.dumps(mutate(data, request, values)).encode()), ParsedRequest)
    name = data.draw(st.sampled_from([n for n in response_samples(endpoint) if n != "array_broken_off.json"]))
    factory = parser_for(endpoint, name)
    if name.endswith(".sse"):
        raw = mutate_stream(data, sample(endpoint, name).replace(b"\r\n", b"\n"), values)
    else:
        body = mutate(data, json.loads(sample(endpoint, name)), values)
        raw = json.dumps(body, indent=1).encode()
        if buffered(endpoint):
            assert replay(factory, [raw])[1].complete == isinstance(body, dict)
    cut = data.draw(st.integers(0, len(raw)))
    assert replay(factory, [raw[:cut], raw[cut:]]) == replay(factory, [raw])


# --- what is not JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"not json", b"{", b"[]", b"3", b'"hello"', b"\xff\xfe", b"model=gpt&stream=1"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_request_that_is_not_a_json_object_sets_error(endpoint: str, body: bytes) -> None:
    req = registry.parse_request(endpoint, body)
    assert req.error and req.tools == () and req.message_count == 0


@pytest.mark.parametrize("body", [b"", b"<html>502 Bad Gateway</html>", b"upstream connect error", b'{"id": "cut'])
@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("endpoint", PARSERS)
def test_a_response_that_is_not_json_is_incomplete(endpoint: str, streamed: bool, body: bytes) -> None:
    reported, result = replay(functools.partial(registry.response_parser, endpoint, streamed), [body])
    assert reported == [] and result.tool_calls == () and not result.complete and result.errors


# --- a request resending a reply reads it as its response did ------------------------------------------

HI, MORE = {"role": "user", "content": "hi"}, {"role": "user", "content": "more"}
RESEND = {
    "chat_completions": lambda body: {"model": "m", "messages": [HI, body["choices"][0]["message"], MORE]},
    "messages": lambda body: {"model": "m", "messages": [HI, {"role": "assistant", "content": body["content"]}]},
    "responses": lambda body: {"model": "m", "input": [HI, *body["output"], MORE]},
    "generate_content": lambda body: {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            body["candidates"][0]["content"],
            {"role": "user", "parts": [{"text": "more"}]},
        ]
    },
}
REPLY_KEYS = {
    "chat_completions": "choices",
    "messages": "content",
    "responses": "output",
    "generate_content": "candidates",
}


def replies() -> list[Any]:
    found = []
    for endpoint, key in REPLY_KEYS.items():
        for name in response_samples(endpoint):
            if name.endswith(".json") and key in json.loads(sample(endpoint, name)):
                found.append(pytest.param(endpoint, name, id=f"{endpoint}-{name}"))
    return found


@pytest.mark.parametrize(("endpoint", "name"), replies())
def test_a_resent_reply_matches_its_response(endpoint: str, name: str) -> None:
    data = sample(endpoint, name)
    response = replay(parser_for(endpoint, name), [data])[1]
    req = registry.parse_request(endpoint, json.dumps(RESEND[endpoint](json.loads(data))).encode())
    assert req.first_reply_text == response.text
    assert req.first_reply_tool_ids == tuple(c.id for c in response.tool_calls)


# --- the official SDK reads the same samples the same way -------------------------------------------


def sdk_cases() -> list[Any]:
    found = [(e, n) for e in ENDPOINTS for n in response_samples(e) if n not in SDKS[e].differs]
    return [pytest.param(e, n, id=f"{e}-{n}") for e, n in found]


@pytest.mark.parametrize(("endpoint", "name"), sdk_cases())
def test_the_official_sdk_reads_the_sample_alike(endpoint: str, name: str) -> None:
    data, streamed = sample(endpoint, name), name.endswith(".sse")
    ours = replay(parser_for(endpoint, name), [data])[1]
    sdk = SDKS[endpoint]
    assert sdk.reads(data, streamed) == sdk.ours(ours, streamed)
