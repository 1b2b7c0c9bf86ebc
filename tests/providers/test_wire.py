"""The JSON helpers every provider parser shares: tolerant parsing (big integers kept exact), error shapes
for bodies that are not objects, the buffered parser fed in any split, and content text extraction."""

from __future__ import annotations

import json
from typing import Any

import pytest

from toolwatch.providers._wire import (
    BufferedJSONParser,
    as_dict,
    as_int,
    as_list,
    as_str,
    compact_json,
    content_text,
    error_fields,
    load_body,
    load_request,
    loads,
    snippet,
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


@pytest.mark.parametrize("data", [b'{"t": NaN}', b"[Infinity]", b"-Infinity"])
def test_loads_refuses_non_json_number_literals(data: bytes) -> None:
    value, problem = loads(data)
    assert value is None and problem


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


# --- BufferedJSONParser -----------------------------------------------------------------------


class Recording(BufferedJSONParser):
    """Hands back what ``parse`` was given, as the response text."""

    def __init__(self) -> None:
        super().__init__()
        self.parsed: list[dict[str, Any]] = []

    def parse(self, resp: dict[str, Any]) -> ParsedResponse:
        self.parsed.append(resp)
        return ParsedResponse(text=json.dumps(resp, sort_keys=True), complete=True)


BODY = '{"id": "r1", "content": [{"type": "text", "text": "héllo"}], "n": 3}'.encode()


def test_buffered_parser_sees_the_whole_body_in_any_split() -> None:
    expected = {"id": "r1", "content": [{"type": "text", "text": "héllo"}], "n": 3}
    for cut in range(len(BODY) + 1):
        parser = Recording()
        assert parser.feed(BODY[:cut]) == []
        assert parser.feed(BODY[cut:]) == []
        resp = parser.finish()
        assert parser.parsed == [expected], cut
        assert resp.complete and json.loads(resp.text) == expected


def test_buffered_parser_fed_byte_by_byte() -> None:
    parser = Recording()
    for i in range(len(BODY)):
        assert parser.feed(BODY[i : i + 1]) == []
    parser.feed(b"")
    parser.finish()
    assert parser.parsed == [{"id": "r1", "content": [{"type": "text", "text": "héllo"}], "n": 3}]


@pytest.mark.parametrize(
    ("chunks", "error"),
    [
        ([b'{"id": ', b'"r1"'], "response body is not JSON: "),
        ([], "response body is not JSON: "),
        ([b"[1,", b" 2]"], "response body is not a JSON object"),
    ],
)
def test_buffered_parser_does_not_parse_a_body_that_is_not_an_object(chunks: list[bytes], error: str) -> None:
    parser = Recording()
    for chunk in chunks:
        parser.feed(chunk)
    resp = parser.finish()
    assert parser.parsed == []
    assert resp.complete is False
    assert len(resp.errors) == 1 and resp.errors[0].startswith(error)


def test_buffered_parser_subclasses_must_implement_parse() -> None:
    parser = BufferedJSONParser()
    parser.feed(b"{}")
    with pytest.raises(NotImplementedError):
        parser.finish()


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
