"""The JSON helpers every provider parser shares: tolerant parsing (big integers kept exact), error shapes
for bodies that are not objects, the buffered parser fed in any split, and content text extraction."""

from __future__ import annotations

import json
from typing import Any

import pytest

from toolwatch.providers._wire import (
    as_dict,
    as_int,
    as_list,
    as_str,
    clean_text,
    compact_json,
    content_text,
    error_fields,
    load_body,
    load_request,
    loads,
    snippet,
    strict_json,
)
from toolwatch.providers.base import ParsedRequest, ParsedResponse

BIG = 123456789012345678901234567890  # beyond 64 bits


# --- loads ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b'{"a": 1, "b": [true, null, "x"]}', {"a": 1, "b": [True, None, "x"]}),
        ('{"a": 1}', {"a": 1}),
        (b"[1, 2.5]", [1, 2.5]),
        (b'"text"', "text"),
        (b"  42 ", 42),
        ('{"city": "Zürich"}'.encode(), {"city": "Zürich"}),
        (b'{"n": 9223372036854775807}', {"n": 9223372036854775807}),  # the largest 64-bit integer
    ],
)
def test_loads_parses_json(data: bytes | str, value: Any) -> None:
    assert loads(data) == (value, None)


@pytest.mark.parametrize(
    "text", [f'{{"id": {BIG}}}', f"[{BIG}]", '{"wei": 1000000000000000000000}', '{"n": -9223372036854775809}']
)
def test_loads_keeps_big_integers_exact(text: str) -> None:
    value, problem = loads(text)
    assert problem is None
    # compared as text: a float that happens to equal the integer still prints as one (1e+21)
    assert json.dumps(value) == json.dumps(json.loads(text))


@pytest.mark.parametrize("data", [b"", b"{", b"not json", b'{"a": 1,}', b"{'a': 1}", b'{"a": 1} {"b": 2}', b"\xff\xfe"])
def test_loads_reports_a_problem_and_never_raises(data: bytes) -> None:
    value, problem = loads(data)
    assert value is None
    assert isinstance(problem, str) and problem


def test_loads_survives_absurd_nesting() -> None:
    value, problem = loads(b"[" * 200_000 + b"]" * 200_000)
    assert value is None and problem


def test_loads_survives_absurd_nesting_on_the_standard_librarys_path_too() -> None:
    # a long digit run sends the text to the standard library, whose parser recurses
    value, problem = loads(b"[" * 100_000 + b"12345678901234567890" + b"]" * 100_000)
    assert value is None and problem


def test_loads_of_a_str_that_cannot_be_encoded_never_raises() -> None:
    value, problem = loads('"\ud800"')
    assert value is None and problem


@pytest.mark.parametrize("data", [b'{"t": NaN}', b"[Infinity]", b"-Infinity"])
def test_loads_refuses_non_json_number_literals(data: bytes) -> None:
    value, problem = loads(data)
    assert value is None and problem


# --- lone surrogates: every string that comes out can be stored ---------------------------------


def test_a_long_number_beside_a_lone_surrogate_gives_a_storable_string() -> None:
    # the standard library keeps the number exact, and used to let "\ud800" through into the model name
    value, problem = loads(b'{"model": "gpt-4o\\ud800", "n": 1234567890123456789}')
    assert (value, problem) == ({"model": "gpt-4o\ufffd", "n": 1234567890123456789}, None)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('["\\ud800"]', ["\ufffd"]),
        (
            '{"k\\udfff": ["a\\ud800b", {"x": "\\uDC00", "n": null}], "y": 1}',
            {"k\ufffd": ["a\ufffdb", {"x": "\ufffd", "n": None}], "y": 1},
        ),
        ('"\\ud83d\\ude00"', "\U0001f600"),  # a pair is one character
        ('["\\ud83d\\ud83d\\ude00", "\\ude00"]', ["\ufffd\U0001f600", "\ufffd"]),
        ('{"id": ' + str(BIG) + ', "s": "\\udbff"}', {"id": BIG, "s": "\ufffd"}),
    ],
)
def test_strict_json_replaces_lone_surrogates(text: str, value: Any) -> None:
    assert strict_json(text) == value
    assert strict_json(text.encode()) == value


def test_strict_json_replaces_surrogates_that_are_not_escapes() -> None:
    text = f'{{"s": "a\ud800", "n": {BIG}}}'  # the surrogate itself, not its escape
    expected = {"s": "a\ufffd", "n": BIG}
    assert strict_json(text) == expected
    assert strict_json(text.encode("utf-8", "surrogatepass")) == expected  # decoded with "surrogatepass"
    assert strict_json(text.encode("utf-16", "surrogatepass")) == expected  # UTF-16 is detected
    assert loads(text.encode("utf-8", "surrogatepass")) == (expected, None)


def test_strict_json_cleans_nesting_it_can_parse_without_recursing() -> None:
    value = strict_json("[" * 900 + '"\\ud800"' + "]" * 900)
    for _ in range(900):
        value = value[0]
    assert value == "\ufffd"


def test_strict_json_raises_for_what_is_not_json() -> None:
    # its callers (the recorder's validation) turn these into a verdict
    with pytest.raises(RecursionError):
        strict_json(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ValueError):
        strict_json(b"\xff")
    with pytest.raises(ValueError):
        strict_json("[NaN]")


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("plain", "plain"),
        ("Zürich ☂ 🌂", "Zürich ☂ 🌂"),
        ("a\ud800b", "a\ufffdb"),
        ("\udce9", "\ufffd"),  # a surrogate escape of a byte that was not UTF-8
        ("\ud83d\ude00", "\U0001f600"),
    ],
)
def test_clean_text(text: str, clean: str) -> None:
    assert clean_text(text) == clean
    clean_text(text).encode("utf-8")


def test_compact_json_output_is_storable() -> None:
    # orjson refuses the surrogate; the standard library, its fallback, would write it as it is
    assert compact_json({"n": BIG, "s": "a\ud800"}) == f'{{"n":{BIG},"s":"a\ufffd"}}'
    assert compact_json("\ud800") == '"\ufffd"'


# --- load_body / load_request -----------------------------------------------------------------


def test_load_body_gives_the_object() -> None:
    assert load_body(b'{"id": "msg_1", "content": []}') == {"id": "msg_1", "content": []}


@pytest.mark.parametrize("body", [b"", b"<html>502 Bad Gateway</html>", b'{"id": "cut'])
def test_load_body_that_is_not_json(body: bytes) -> None:
    resp = load_body(body)
    assert isinstance(resp, ParsedResponse)
    assert len(resp.errors) == 1 and resp.errors[0].startswith("response body is not JSON: ")
    assert resp.complete is False and resp.tool_calls == () and resp.text == ""


@pytest.mark.parametrize("body", [b"[]", b'[{"id": 1}]', b'"ok"', b"null", b"7"])
def test_load_body_that_is_not_an_object(body: bytes) -> None:
    resp = load_body(body)
    assert resp == ParsedResponse(errors=("response body is not a JSON object",))


def test_load_request_gives_the_object() -> None:
    assert load_request(b'{"model": "gpt-x", "messages": []}') == {"model": "gpt-x", "messages": []}


@pytest.mark.parametrize("body", [b"", b"model=gpt-x&stream=true", b'{"model": '])
def test_load_request_that_is_not_json(body: bytes) -> None:
    req = load_request(body)
    assert isinstance(req, ParsedRequest)
    assert req.error is not None and req.error.startswith("request body is not JSON: ")
    assert req.model is None and req.tools == () and req.message_count == 0


@pytest.mark.parametrize("body", [b"[]", b'"hello"', b"true"])
def test_load_request_that_is_not_an_object(body: bytes) -> None:
    assert load_request(body) == ParsedRequest(error="request body is not a JSON object")


# --- compact_json -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"b": 1, "a": [1, 2, {"z": None}]}, '{"b":1,"a":[1,2,{"z":null}]}'),  # key order kept
        ({"city": "Zürich", "emoji": "☂"}, '{"city":"Zürich","emoji":"☂"}'),  # non-ASCII kept
        ({"q": 'say "hi"\n'}, '{"q":"say \\"hi\\"\\n"}'),
        ([], "[]"),
        ("x", '"x"'),
        (None, "null"),
        (True, "true"),
        (1.5, "1.5"),
    ],
)
def test_compact_json(value: object, text: str) -> None:
    assert compact_json(value) == text


def test_compact_json_keeps_big_integers_exact() -> None:
    assert compact_json({"id": BIG, "name": "é"}) == f'{{"id":{BIG},"name":"é"}}'
    assert compact_json([-BIG]) == f"[-{BIG}]"


def test_compact_json_of_nesting_deeper_than_orjson_allows() -> None:
    value: Any = "leaf"
    for _ in range(300):
        value = [value]
    assert compact_json(value) == "[" * 300 + '"leaf"' + "]" * 300


def test_compact_json_of_what_cannot_be_serialised_is_null() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert compact_json(deep) == "null"
    assert compact_json({1, 2}) == "null"
    assert compact_json({"f": object()}) == "null"


# --- content_text -----------------------------------------------------------------------------


def test_content_text_of_a_string_is_the_string() -> None:
    assert content_text("  Hello\nworld ") == "  Hello\nworld "
    assert content_text("", "\n") == ""


def test_content_text_of_parts_joins_the_text_parts() -> None:
    parts = [
        {"type": "text", "text": "Look at"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "this chart.", "cache_control": {"type": "ephemeral"}},
    ]
    assert content_text(parts) == "Look atthis chart."
    assert content_text(parts, "\n") == "Look at\nthis chart."
    assert content_text(parts, " ") == "Look at this chart."


def test_content_text_of_anthropic_blocks_leaves_other_blocks_out() -> None:
    blocks = [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"text": "not this"}},
        {"type": "tool_result", "tool_use_id": "toolu_0", "content": "nor this"},
    ]
    assert content_text(blocks, "\n") == "Checking."


@pytest.mark.parametrize(
    "content",
    [None, 42, {"type": "text", "text": "a lone dict is not a list of parts"}, [], ["bare string"], [None, 3]],
)
def test_content_text_of_anything_else_is_empty(content: object) -> None:
    assert content_text(content, "\n") == ""


def test_content_text_skips_text_that_is_not_a_string() -> None:
    assert content_text([{"type": "text", "text": 5}, {"type": "text", "text": "ok"}]) == "ok"
    assert content_text([{"type": "text"}, {"type": "TEXT", "text": "no"}, {"text": "no"}]) == ""


# --- accessors and the rest -------------------------------------------------------------------


def test_accessors_return_none_or_a_default_for_the_wrong_type() -> None:
    assert as_dict({"a": 1}) == {"a": 1} and as_dict([1]) is None and as_dict(None) is None
    assert as_list([1]) == [1] and as_list({"a": 1}) == [] and as_list("ab") == []
    assert as_str("x") == "x" and as_str(1) is None and as_str(None) is None
    assert as_int(3) == 3 and as_int(BIG) == BIG
    assert as_int(True) is None and as_int(1.0) is None and as_int("3") is None


@pytest.mark.parametrize(
    ("obj", "fields"),
    [
        ({"id": "x"}, None),
        ({"error": None}, None),
        ({"error": {"type": "rate_limit_error", "message": "slow down"}}, ("rate_limit_error", "slow down")),
        ({"error": {"code": "invalid_api_key", "message": "bad key"}}, ("invalid_api_key", "bad key")),
        ({"error": {"type": "server_error", "code": "x", "message": "m"}}, ("server_error", "m")),
        ({"error": {"code": 429, "message": "quota"}}, ("429", "quota")),
        ({"error": {"message": "only a message"}}, (None, "only a message")),
        ({"error": "plain text failure"}, (None, "plain text failure")),
        ({"error": ["a", 1]}, (None, '["a",1]')),
        ({"error": {"type": 5, "code": True, "message": 7}}, (None, None)),
    ],
)
def test_error_fields(obj: dict[str, Any], fields: tuple[str | None, str | None] | None) -> None:
    assert error_fields(obj) == fields


def test_snippet_is_short_and_printable() -> None:
    assert snippet("abc") == "'abc'"
    assert snippet(b"\xff ok") == repr("\ufffd ok")
    long = snippet("x" * 500, limit=10)
    assert long == repr("x" * 10 + "...")
