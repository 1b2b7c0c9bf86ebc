"""Malformed tool-call kinds, in the README's order (truncated > invalid_json > unknown_tool >
schema_violation), and the compiled-schema cache behind schema validation."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolwatch.providers._wire import strict_json
from toolwatch.recorder import validate
from toolwatch.recorder.validate import OK, SchemaCache, Verdict, classify

WEATHER = json.dumps(
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "days": {"type": "integer"},
        },
        "required": ["city"],
        "additionalProperties": False,
    }
)
DECLARED: dict[str, str | None] = {"get_weather": WEATHER, "ping": None}


def kind(
    name: str,
    raw: str,
    declared: dict[str, str | None] | None = None,
    *,
    finish_reason: str | None = "tool_calls",
    is_last: bool = True,
    cache: SchemaCache | None = None,
) -> str:
    verdict = classify(
        name,
        raw,
        DECLARED if declared is None else declared,
        finish_reason=finish_reason,
        is_last=is_last,
        cache=cache or SchemaCache(),
    )
    return verdict.kind


def test_a_well_formed_call_is_ok() -> None:
    verdict = classify(
        "get_weather",
        '{"city": "Oslo", "unit": "c", "days": 3}',
        DECLARED,
        finish_reason="tool_calls",
        is_last=True,
        cache=SchemaCache(),
    )
    assert verdict == OK
    assert verdict == Verdict("", "")


def test_a_declared_tool_without_a_schema_takes_any_object() -> None:
    assert kind("ping", '{"anything": [1, 2, {"deep": null}]}') == ""
    assert kind("ping", "{}") == ""


# --- truncated ---------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["length", "max_tokens", "MAX_TOKENS", "max_output_tokens"])
def test_the_last_call_of_a_response_at_any_providers_token_limit_is_truncated(reason: str) -> None:
    verdict = classify("get_weather", '{"city": "Os', DECLARED, finish_reason=reason, is_last=True, cache=SchemaCache())
    assert verdict.kind == "truncated"
    assert reason in verdict.detail


@pytest.mark.parametrize("reason", ["stop", "tool_calls", "tool_use", "end_turn", "STOP", "content_filter", None])
def test_other_finish_reasons_never_truncate(reason: str | None) -> None:
    assert kind("get_weather", '{"city": "Os', finish_reason=reason) == "invalid_json"
    assert kind("get_weather", '{"city": "Oslo"}', finish_reason=reason) == ""


def test_truncated_is_checked_before_everything_else() -> None:
    # broken JSON, an undeclared name, a schema break: the token limit explains all of them
    assert kind("nope", '{"ci', finish_reason="length") == "truncated"
    assert kind("nope", '{"city": "Oslo"}', finish_reason="max_tokens") == "truncated"
    assert kind("get_weather", '{"city": 5}', finish_reason="MAX_TOKENS") == "truncated"
    # even complete-looking arguments: the call was still being produced when the limit hit
    assert kind("get_weather", '{"city": "Oslo"}', finish_reason="length") == "truncated"


def test_only_the_last_call_of_a_cut_response_is_truncated() -> None:
    assert kind("get_weather", '{"city": "Oslo"}', finish_reason="length", is_last=False) == ""
    assert kind("get_weather", '{"city": "Os', finish_reason="length", is_last=False) == "invalid_json"
    assert kind("nope", "{}", finish_reason="max_tokens", is_last=False) == "unknown_tool"
    assert kind("get_weather", "{}", finish_reason="max_output_tokens", is_last=False) == "schema_violation"


# --- invalid_json ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        '{"city": "Oslo"',  # cut short
        "{'city': 'Oslo'}",  # Python repr, not JSON
        '{"city": "Oslo"} trailing',
        '["Oslo"]',  # JSON, but not an object
        '"Oslo"',
        "42",
        "null",
        "true",
    ],
)
def test_arguments_that_are_not_a_json_object_are_invalid_json(raw: str) -> None:
    assert kind("get_weather", raw) == "invalid_json"


@pytest.mark.parametrize("raw", ["", "   ", "\n\t"])
def test_empty_arguments_are_invalid_json(raw: str) -> None:
    verdict = classify("ping", raw, DECLARED, finish_reason="tool_calls", is_last=True, cache=SchemaCache())
    assert verdict.kind == "invalid_json"
    assert "empty" in verdict.detail


def test_the_detail_names_what_the_arguments_are() -> None:
    verdict = classify("ping", "[1]", DECLARED, finish_reason=None, is_last=True, cache=SchemaCache())
    assert verdict == Verdict("invalid_json", "arguments are list, not an object")


def test_deeply_nested_arguments_are_invalid_json_not_a_crash() -> None:
    raw = "[" * 100_000 + "]" * 100_000
    assert kind("ping", raw) == "invalid_json"


def test_invalid_json_comes_before_unknown_tool() -> None:
    assert kind("not_declared", '{"x": ') == "invalid_json"
    assert kind("not_declared", "[]") == "invalid_json"


@pytest.mark.parametrize("raw", ['{"days": NaN}', '{"days": Infinity}'])
def test_non_json_number_literals_are_invalid_json(raw: str) -> None:
    assert kind("ping", raw) == "invalid_json"


# --- big integers ------------------------------------------------------------------------------


def test_big_integers_are_valid_json_and_keep_their_type() -> None:
    big = "123456789012345678901234567890"  # beyond 64 bits
    assert kind("ping", f'{{"id": {big}}}') == ""
    # an exact integer, so "type": "integer" holds (a float would not be an integer)
    assert kind("get_weather", f'{{"city": "Oslo", "days": {big}}}') == ""
    assert kind("get_weather", f'{{"city": {big}}}') == "schema_violation"


# --- unknown_tool ------------------------------------------------------------------------------


def test_a_name_not_declared_in_the_request_is_unknown_tool() -> None:
    verdict = classify(
        "get_wether", '{"city": "Oslo"}', DECLARED, finish_reason="tool_calls", is_last=True, cache=SchemaCache()
    )
    assert verdict.kind == "unknown_tool"
    assert "get_wether" in verdict.detail


def test_names_are_matched_exactly() -> None:
    assert kind("Get_Weather", '{"city": "Oslo"}') == "unknown_tool"
    assert kind("get_weather ", '{"city": "Oslo"}') == "unknown_tool"


def test_any_call_is_unknown_when_the_request_declared_no_tools() -> None:
    assert kind("get_weather", '{"city": "Oslo"}', declared={}) == "unknown_tool"


def test_unknown_tool_comes_before_schema_violation() -> None:
    # these arguments break get_weather's schema, but the name decides first
    assert kind("get_weather_v2", '{"city": 1, "extra": true}') == "unknown_tool"


# --- schema_violation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ('{"unit": "c"}', "required property missing"),
        ('{"city": 12}', "wrong type"),
        ('{"city": "Oslo", "days": "3"}', "a string where an integer is declared"),
        ('{"city": "Oslo", "days": 2.5}', "a fraction where an integer is declared"),
        ('{"city": "Oslo", "unit": "kelvin"}', "not in the enum"),
        ('{"city": "Oslo", "country": "NO"}', "additionalProperties is false"),
    ],
)
def test_arguments_that_break_the_declared_schema_are_a_schema_violation(raw: str, why: str) -> None:
    verdict = classify("get_weather", raw, DECLARED, finish_reason="tool_calls", is_last=True, cache=SchemaCache())
    assert verdict.kind == "schema_violation", why
    assert verdict.detail


def test_the_violation_detail_is_bounded() -> None:
    schema = json.dumps({"type": "object", "properties": {"q": {"type": "string", "enum": ["a" * 1000]}}})
    verdict = classify("s", '{"q": "b"}', {"s": schema}, finish_reason=None, is_last=True, cache=SchemaCache())
    assert verdict.kind == "schema_violation"
    assert len(verdict.detail) <= 300


@pytest.mark.parametrize(
    "schema",
    [
        '{"type": "object", "properties": {"q": {"type": "strnig"}}}',  # unknown type name
        '{"type": "object", "properties": {"q": {"type": "string", "pattern": "(unclosed"}}}',  # bad regex
        '{"type": "object", "required": "q"}',  # required must be a list
        "{not json at all",
    ],
)
def test_a_schema_that_does_not_compile_is_not_held_against_the_model(schema: str) -> None:
    cache = SchemaCache()
    assert kind("s", '{"q": 1}', {"s": schema}, cache=cache) == ""
    assert cache.compile_errors == 1
    # a broken schema does not excuse broken arguments or an unknown name
    assert kind("s", '{"q": ', {"s": schema}, cache=cache) == "invalid_json"
    assert kind("t", '{"q": 1}', {"s": schema}, cache=cache) == "unknown_tool"


def test_an_empty_schema_text_validates_nothing() -> None:
    assert kind("s", '{"q": 1}', {"s": ""}) == ""


@pytest.fixture
def schema_host() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that serves a strict schema at any path and notes every path asked for."""
    hits: list[str] = []
    body = json.dumps({"type": "object", "required": ["must_have"]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_remote_ref_in_a_declared_schema_is_never_fetched(schema_host: tuple[str, list[str]]) -> None:
    url, hits = schema_host
    schema = json.dumps({"$ref": f"{url}/tool-schema.json"})
    verdict = kind("s", '{"q": 1}', {"s": schema})
    assert hits == []  # the recorder must not reach out to hosts named in agent traffic
    assert verdict == ""  # a schema that cannot be resolved locally is not held against the model


# --- SchemaCache -------------------------------------------------------------------------------


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every schema fastjsonschema is asked to compile, in order."""
    seen: list[Any] = []
    real = validate.fastjsonschema.compile

    def counting(definition: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(definition)
        return real(definition, *args, **kwargs)

    monkeypatch.setattr(validate.fastjsonschema, "compile", counting)
    return seen


def test_each_distinct_schema_is_compiled_once(compiles: list[Any]) -> None:
    cache = SchemaCache()
    for _ in range(5):
        assert kind("get_weather", '{"city": "Oslo"}', cache=cache) == ""
        assert kind("get_weather", '{"town": "Oslo"}', cache=cache) == "schema_violation"
    assert len(compiles) == 1
    first = cache.get(WEATHER)
    assert first is not None and cache.get(WEATHER) is first
    assert len(compiles) == 1


def test_schemas_are_cached_by_their_exact_text(compiles: list[Any]) -> None:
    cache = SchemaCache()
    a = '{"type": "object"}'
    b = '{"type":"object"}'  # same schema, other text: cached separately
    assert cache.get(a) is not None and cache.get(b) is not None
    assert cache.get(a) is not None
    assert len(compiles) == 2


def test_a_schema_that_does_not_compile_is_remembered_too(compiles: list[Any]) -> None:
    cache = SchemaCache()
    bad = '{"type": "no-such-type"}'
    assert cache.get(bad) is None
    assert cache.get(bad) is None
    assert cache.compile_errors == 1
    assert len(compiles) == 1


def test_the_cache_evicts_the_least_recently_used_schema(compiles: list[Any]) -> None:
    cache = SchemaCache(capacity=2)
    a, b, c = (json.dumps({"type": "object", "title": t}) for t in "abc")
    cache.get(a)
    cache.get(b)
    cache.get(a)  # a is now the most recently used
    cache.get(c)  # evicts b
    assert len(compiles) == 3
    cache.get(a)
    cache.get(c)
    assert len(compiles) == 3  # both still cached
    cache.get(b)  # compiled again; evicts a (least recently used of a, c)
    assert len(compiles) == 4
    cache.get(c)
    assert len(compiles) == 4
    cache.get(a)
    assert len(compiles) == 5
    assert [d["title"] for d in compiles] == ["a", "b", "c", "b", "a"]


def test_a_shared_cache_serves_many_tools() -> None:
    cache = SchemaCache()
    declared: dict[str, str | None] = {
        f"tool_{i}": json.dumps({"type": "object", "required": [f"arg_{i}"]}) for i in range(20)
    }
    for i in range(20):
        assert kind(f"tool_{i}", f'{{"arg_{i}": 1}}', declared, cache=cache) == ""
        assert kind(f"tool_{i}", f'{{"arg_{i + 1}": 1}}', declared, cache=cache) == "schema_violation"
    assert cache.compile_errors == 0


def reference_parse(raw: str) -> tuple[Any, str | None]:
    """What the arguments parsed as before ``parse_arguments``: the standard library, always."""
    if not raw.strip():
        return None, None
    try:
        return strict_json(raw), None
    except (ValueError, RecursionError) as e:
        return None, str(e)


ARGUMENT_TEXTS = st.one_of(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats(allow_nan=False) | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=12,
    ).map(json.dumps),
    st.sampled_from(
        ['{"a": 1e400}', '{"a": NaN}', '{"a": "\\ud800"}', '{"a": 1,}', "[" * 1200 + "]" * 1200, '{"a": 1', " ", "-0"]
    ),
    st.text(alphabet='{}[]",:0123456789.eE-tfn ', max_size=20),
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(ARGUMENT_TEXTS)
def test_arguments_parse_as_the_standard_library_parses_them(raw: str) -> None:
    value, error = validate.parse_arguments(raw)
    want_value, want_error = reference_parse(raw)
    assert error == want_error
    assert json.dumps(value, sort_keys=True) == json.dumps(want_value, sort_keys=True)
    assert type(value) is type(want_value)
