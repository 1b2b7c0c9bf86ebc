"""Hostile input never makes a parser raise or hang, and nothing it returns holds a string the store
cannot take (a lone surrogate cannot be encoded as UTF-8, and wedged the ClickHouse insert).

Every registered endpoint's request parser and both response parsers (JSON and SSE), and
``providers.parse`` with arbitrary exchange fields, are fed arbitrary bytes, malformed JSON, invalid
UTF-8, lone surrogates (escaped, or encoded as UTF-8), integers of 19 digits and more (which send the text
to the standard library's parser), nesting from 100 to 100,000 levels, and bodies of a few MB. The
examples are derandomized, so a run is reproducible; pytest-timeout is the watchdog for a hang.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import json
import uuid
import zlib
from typing import Any

import brotli
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolwatch.providers import Parsed, parse, registry
from toolwatch.providers.base import ParsedRequest, ParsedResponse
from toolwatch.schemas.exchange import Exchange
from toolwatch.schemas.vocab import API_FLAVORS, OUTCOMES
from toolwatch.spool.frame import Frame

from .helpers import (
    FOLDERS,
    WIRE_WORDS,
    assert_storable,
    distinct_parsers,
    events_of,
    mutate,
    replay,
    request_samples,
    response_samples,
    sample,
    split_at,
)

HOSTILE = settings(
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
ENDPOINTS = list(registry.ENDPOINTS)
RESPONSE_PARSERS = [
    pytest.param(endpoint, streamed, id=f"{endpoint}-{'sse' if streamed else 'json'}")
    for endpoint in distinct_parsers()
    for streamed in (False, True)
]
LONE = ["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d"]  # lone surrogates, as characters
BAD_UTF8 = [
    b"\xff",
    b"\xfe\xff",
    b"\xc3",
    b"\xc3(",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xc0\xaf",
    b"\x80",
    b"\xe2\x82",
]
DEPTHS = [100, 255, 256, 500, 900, 1000, 1023, 1024, 1025, 10_000, 100_000]
BIG = st.integers(10**18, 10**40) | st.integers(-(10**40), -(10**18)) | st.just(1234567890123456789)
DEEP = "\x00deep\x00"  # stands for a deeply nested value, spliced into the JSON text (json.dumps would recurse)
SPLICE = b"<<deep>>"


def hostile_text(words: list[str]) -> st.SearchStrategy[str]:
    pieces = st.text(max_size=4) | st.sampled_from(LONE) | st.sampled_from(words)
    return st.lists(pieces, max_size=4).map("".join)


@functools.cache
def hostile_values(endpoint: str) -> st.SearchStrategy[Any]:
    """Random JSON of the API's own keys and words, with lone surrogates in strings and keys, and big
    integers among the numbers."""
    keys, words = (w.split() for w in WIRE_WORDS[FOLDERS[endpoint]])
    text = hostile_text(words)
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | BIG
        | st.floats(allow_nan=False, allow_infinity=False)
        | text
    )
    return st.recursive(
        leaves | st.sampled_from(words),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(keys) | text, inner, max_size=6),
        max_leaves=12,
    )


def encoded(value: Any, escaped: bool) -> bytes:
    """JSON text: a lone surrogate escaped (``"\\ud800"``), or encoded as UTF-8 (which is invalid UTF-8)."""
    text = json.dumps(value, ensure_ascii=escaped, allow_nan=False).replace('"\\u0000deep\\u0000"', SPLICE.decode())
    return text.encode("utf-8", "surrogatepass")


def poisoned(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with lone surrogates in some of its strings, and a big integer beside them (which sends
    the text to the standard library's parser, the one that let surrogates through)."""
    if isinstance(value, str) and draw(st.booleans()):
        at = draw(st.integers(0, len(value)))
        return value[:at] + draw(st.sampled_from(LONE)) + value[at:]
    if isinstance(value, list):
        return [poisoned(draw, item) for item in value]
    if isinstance(value, dict):
        return {key: poisoned(draw, item) for key, item in value.items()} | {"n": 12345678901234567890}
    return value


@st.composite
def poisoned_sample(draw: st.DrawFn, endpoint: str, names: list[str]) -> bytes:
    """A recorded sample (every JSON event of a stream) with lone surrogates in its strings."""
    raw = sample(endpoint, draw(st.sampled_from(names))).replace(b"\r\n", b"\n")
    escaped = draw(st.booleans())
    try:
        return encoded(poisoned(draw, json.loads(raw)), escaped)
    except ValueError:  # a stream, or a body cut short
        lines = raw.split(b"\n")
    for n, line in enumerate(lines):
        if line.startswith(b"data: {") and line.endswith(b"}"):
            lines[n] = b"data: " + encoded(poisoned(draw, json.loads(line[6:])), escaped)
    return b"\n".join(lines)


@st.composite
def documents(draw: st.DrawFn, endpoint: str) -> bytes:
    """One body: bytes, JSON with lone surrogates and big integers, malformed or deeply nested JSON, a
    recorded sample with a random part replaced by one of those, or with lone surrogates in its strings."""
    kind = draw(st.sampled_from(["bytes", "json", "damaged", "nested", "sample", "poisoned"]))
    if kind == "bytes":
        return draw(st.binary(max_size=1000))
    if kind == "poisoned":
        names = [n for n in request_samples(endpoint) + response_samples(endpoint) if not n.endswith(".sse")]
        return draw(poisoned_sample(endpoint, names))
    if kind == "sample":
        name = draw(st.sampled_from([n for n in request_samples(endpoint) + response_samples(endpoint)]))
        raw = sample(endpoint, name)
        if name.endswith(".sse") or name == "array_broken_off.json":
            return raw
        doc = mutate(draw(st.data()), json.loads(raw), hostile_values(endpoint) | st.just(DEEP))
    else:
        doc = draw(hostile_values(endpoint))
    raw = encoded(doc, draw(st.booleans()))
    if kind in ("nested", "sample"):
        depth = draw(st.sampled_from(DEPTHS))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'{"parameters":[', b"]}")]))
        leaf = draw(st.sampled_from([raw, b"12345678901234567890", b'"\\ud800"']))
        deep = opener * depth + leaf + closer * depth
        raw = raw.replace(SPLICE, deep, 1) if kind == "sample" else deep
        if draw(st.booleans()):
            raw = raw[: draw(st.integers(0, len(raw)))]
    elif kind == "damaged":
        at = draw(st.integers(0, len(raw)))
        junk = draw(st.sampled_from(BAD_UTF8) | st.binary(max_size=6) | st.just(b""))
        raw = raw[:at] + junk + raw[at + draw(st.integers(0, 3)) :]
    return raw


@st.composite
def streams(draw: st.DrawFn, endpoint: str) -> bytes:
    """SSE events whose data are hostile documents, with or without event names, in any line ends; or a
    recorded stream with lone surrogates in its strings."""
    recorded = [n for n in response_samples(endpoint) if n.endswith(".sse")]
    if recorded and draw(st.booleans()):
        return draw(poisoned_sample(endpoint, recorded))
    docs = draw(st.lists(documents(endpoint), min_size=1, max_size=4))
    end = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    names = st.sampled_from([b"", b"event: message" + end, b"event: error" + end, b"event: x\xff" + end])
    return b"".join(draw(names) + b"data: " + doc.replace(b"\n", b" ") + end + end for doc in docs)


# --- request and response parsers ------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.timeout(60)
@HOSTILE
@given(data=st.data())
def test_request_parsers_never_raise(endpoint: str, data: st.DataObject) -> None:
    req = registry.ENDPOINTS[endpoint].parse_request(data.draw(documents(endpoint)))
    assert isinstance(req, ParsedRequest)
    assert_storable(req)


@pytest.mark.parametrize(("endpoint", "streamed"), RESPONSE_PARSERS)
@pytest.mark.timeout(60)
@HOSTILE
@given(data=st.data())
def test_response_parsers_never_raise(endpoint: str, streamed: bool, data: st.DataObject) -> None:
    body = data.draw(streams(endpoint) if streamed else documents(endpoint))
    factory = functools.partial(registry.response_parser, endpoint, streamed)
    reported, result = replay(factory, split_at(body, data.draw(st.lists(st.integers(0, len(body)), max_size=4))))
    assert isinstance(result, ParsedResponse)
    assert_storable((reported, result))
    assert (reported, result) == replay(factory, [body])


@st.composite
def large(draw: st.DrawFn, endpoint: str, kind: str, size: int = 2_000_000) -> bytes:
    """A body of about ``size`` bytes: a sample's turns, items or events repeated, one huge string in it,
    or a hostile document repeated."""
    how = draw(st.sampled_from(["repeat", "string", "garbage"]))
    if how == "garbage":
        doc = draw(documents(endpoint)) or b"{"
        return doc * (size // len(doc) + 1)
    names = request_samples(endpoint) if kind == "request" else response_samples(endpoint)
    name = draw(st.sampled_from([n for n in names if kind != "sse" or n.endswith(".sse")]))
    raw = sample(endpoint, name)
    if name.endswith(".sse"):
        events = events_of(raw.replace(b"\r\n", b"\n"))
        middle = b"".join(events[1:-1]) or raw
        return events[0] + middle * (size // len(middle) + 1) + events[-1]
    if name == "array_broken_off.json":
        return raw * (size // len(raw) + 1)
    obj = json.loads(raw)
    lists = {k: v for k, v in obj.items() if isinstance(v, list) and v} if isinstance(obj, dict) else {}
    if how == "repeat" and lists:
        key = draw(st.sampled_from(sorted(lists)))
        obj[key] = lists[key] * (size // len(json.dumps(lists[key])) + 1)
    else:
        filler = draw(st.sampled_from(["x", "東京 ☔ ", "\ud800", "\\", '"', "\n"]))
        obj = mutate(draw(st.data()), obj, st.just(filler * (size // len(filler.encode("utf-8", "surrogatepass")))))
    return encoded(obj, draw(st.booleans()))


LARGE = [
    pytest.param(endpoint, kind, id=f"{endpoint}-{kind}")
    for endpoint in ENDPOINTS
    for kind in ("request", "json", "sse")
    if kind != "sse" or any(n.endswith(".sse") for n in response_samples(endpoint))
]


@pytest.mark.parametrize(("endpoint", "kind"), LARGE)
@pytest.mark.timeout(60)
@settings(HOSTILE, max_examples=3)
@given(data=st.data())
def test_large_bodies_never_raise_or_hang(endpoint: str, kind: str, data: st.DataObject) -> None:
    body = data.draw(large(endpoint, kind))
    entry = registry.ENDPOINTS[endpoint]
    if kind == "request":
        assert_storable(entry.parse_request(body))
    else:
        assert_storable(replay(entry.stream_parser if kind == "sse" else entry.json_parser, [body]))


# --- the brief's examples, and the deepest nesting ---------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_model_with_a_lone_surrogate_beside_a_big_integer(endpoint: str) -> None:
    # the standard library's parser (for the 19 digits) let "\ud800" into the model name, and the insert failed
    body = b'{"model": "gpt-4o\\ud800", "n": 1234567890123456789, "stream": true}'
    entry = registry.ENDPOINTS[endpoint]
    req = entry.parse_request(body)
    assert req.model == "gpt-4o\ufffd"
    assert_storable(req)
    for factory in (entry.json_parser, entry.stream_parser):
        for data in (body, b"data: " + body + b"\n\n"):
            assert_storable(replay(factory, [data]))
    if endpoint in ("chat_completions", "messages", "responses"):
        assert replay(entry.json_parser, [body])[1].model == "gpt-4o\ufffd"


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000, b"{" * 100_000])
@pytest.mark.parametrize("digits", [b"", b"12345678901234567890"], ids=["orjson", "stdlib"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_nesting_100_000_deep_is_a_parse_error(endpoint: str, digits: bytes, body: bytes) -> None:
    body = body.replace(b"1", digits or b"1")
    entry = registry.ENDPOINTS[endpoint]
    assert entry.parse_request(body).error
    assert replay(entry.json_parser, [body])[1].errors
    assert replay(entry.stream_parser, [b"data: " + body + b"\n\n"])[1].errors


# --- providers.parse with any exchange ---------------------------------------------------------------

ROUTES = {  # (api, path) pairs that reach each endpoint, some naming a model or deployment oddly
    "chat_completions": [
        ("openai", "/v1/chat/completions"),
        ("azure", "/openai/deployments/gpt\udce9/chat/completions"),
        ("gemini", "/v1beta/openai/chat/completions"),
    ],
    "messages": [("anthropic", "/v1/messages")],
    "responses": [("openai", "/v1/responses"), ("azure", "/openai/deployments/%ff%fe/responses")],
    "generate_content": [
        ("gemini", "/v1beta/models/gemini-2.5-flash:generateContent"),
        ("gemini", "/v1beta/models/g%ED%A0%80:generateContent"),
    ],
    "stream_generate_content": [
        ("gemini", "/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
        ("gemini", "/v1/models/tunedModels/t\ud800:streamGenerateContent"),
    ],
}
ENCODINGS = ["gzip", "x-gzip", "deflate", "br", "zstd", "identity", "gzip, br", "br, zstd", "compress", "gz\udce9", ""]
COMPRESS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}


def encode_body(body: bytes, encoding: str) -> bytes:
    """``body`` in ``encoding`` (stacked ones applied left to right); unknown codings leave it as is."""
    for name in (n.strip() for n in encoding.split(",")):
        body = COMPRESS[name](body) if name in COMPRESS else body
    return body


@st.composite
def exchanges(draw: st.DrawFn) -> Frame:
    endpoint = draw(st.sampled_from(ENDPOINTS))
    text = st.text(st.characters(exclude_categories=()), max_size=12)
    encoding = draw(st.none() | st.sampled_from(ENCODINGS) | text)
    response = draw(streams(endpoint) | documents(endpoint))
    if encoding is not None and draw(st.booleans()):
        response = encode_body(response, encoding)
        response = response[: draw(st.integers(0, len(response)))] if draw(st.booleans()) else response
    api, path = draw(st.sampled_from(ROUTES[endpoint]))
    if draw(st.integers(0, 3)) == 0:  # any path, which may reach another endpoint or none
        api, path = draw(st.sampled_from(API_FLAVORS)), draw(text | st.just(path + "/\ud800"))
    exchange = Exchange(
        id=uuid.UUID(int=draw(st.integers(0, 2**128 - 1))),
        started_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        upstream=draw(text),
        api=api,
        method="POST",
        path=path,
        status=draw(st.sampled_from([0, 200, 400, 429, 500])),
        outcome=draw(st.sampled_from(OUTCOMES)),
        response_content_type=draw(st.none() | st.sampled_from(["text/event-stream", "application/json"]) | text),
        response_content_encoding=encoding,
        request_truncated=draw(st.booleans()) and draw(st.booleans()),
        response_truncated=draw(st.booleans()) and draw(st.booleans()),
    )
    return Frame(exchange, draw(documents(endpoint)), response)


@pytest.mark.timeout(60)
@settings(HOSTILE, max_examples=150)
@given(frame=exchanges())
def test_parse_never_raises_and_keeps_only_storable_text(frame: Frame) -> None:
    parsed = parse(frame)
    assert isinstance(parsed, Parsed)
    assert_storable(parsed)
    assert_storable(parsed.declared)


@pytest.mark.parametrize(("endpoint", "api", "path"), [(e, a, p) for e, routes in ROUTES.items() for a, p in routes])
def test_parse_of_an_exchange_with_lone_surrogates_everywhere(endpoint: str, api: str, path: str) -> None:
    body = b'{"model": "m\\ud800", "n": 12345678901234567890, "stream": 1}'
    exchange = Exchange(
        id=uuid.UUID(int=1),
        started_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        upstream="u\udce9",
        api=api,
        method="POST",
        path=path,
        response_content_type="text/event-stream\udce9",
        response_content_encoding="gzip\udce9",  # a header byte that was not UTF-8
    )
    parsed = parse(Frame(exchange, body, b"data: " + body + b"\n\n"))
    assert parsed.endpoint == endpoint and parsed.parse_status == "parse_error"
    assert "cannot decode gzip\ufffd" in (parsed.parse_error or "")
    assert_storable(parsed)
