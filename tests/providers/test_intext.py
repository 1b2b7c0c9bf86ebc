"""In-text tool calls: realistic replies of open models that wrote their call into the text, and ordinary
prose and code that must not count."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolwatch.providers.intext import InTextCall, detect

DECLARED = {"get_weather", "read_file", "search"}
PARIS = '{"city":"Paris"}'

SAMPLES: list[tuple[str, str, list[InTextCall]]] = [
    (
        "hermes / qwen2.5",
        'I\'ll look that up.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        [InTextCall("get_weather", PARIS, "tool_call_tag")],
    ),
    (
        "hermes, two calls, unclosed last tag",
        '<tool_call>\n{"name": "search", "arguments": {"q": "a"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "read_file", "arguments": {"path": "x.py"}}',
        [
            InTextCall("search", '{"q":"a"}', "tool_call_tag"),
            InTextCall("read_file", '{"path":"x.py"}', "tool_call_tag"),
        ],
    ),
    (
        "glm-4.5",
        "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n"
        "<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n</tool_call>",
        [InTextCall("get_weather", '{"city":"Paris","days":3}', "tool_call_tag")],
    ),
    (
        "qwen3-coder",
        "<tool_call>\n<function=read_file>\n<parameter=path>\nsrc/app.py\n</parameter>\n"
        "<parameter=limit>\n200\n</parameter>\n</function>\n</tool_call>",
        [InTextCall("read_file", '{"path":"src/app.py","limit":200}', "tool_call_tag")],
    ),
    (
        "llama 3 function tag",
        'Sure! <function=get_weather>{"city": "Paris"}</function>',
        [InTextCall("get_weather", PARIS, "function_tag")],
    ),
    (
        "llama 3.1 python_tag",
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}<|eom_id|>',
        [InTextCall("get_weather", PARIS, "python_tag")],
    ),
    (
        "mistral",
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abc123xyz"}]',
        [InTextCall("get_weather", PARIS, "mistral")],
    ),
    (
        "mistral v11",
        '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}',
        [InTextCall("get_weather", PARIS, "mistral_args")],
    ),
    (
        "deepseek v3",
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
        '{"city": "Paris"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
        [InTextCall("get_weather", PARIS, "deepseek")],
    ),
    (
        "deepseek v3.1",
        '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"city": "Paris"}'
        "<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
        [InTextCall("get_weather", PARIS, "deepseek")],
    ),
    (
        "functionary / glaive",
        '<functioncall> {"name": "search", "arguments": "{\\"q\\": \\"llm\\"}"}',
        [InTextCall("search", '{"q": "llm"}', "function_call_tag")],
    ),
    (
        "fenced json, declared tool",
        "To answer I need the weather:\n\n"
        '```json\n{\n  "name": "get_weather",\n  "arguments": {"city": "Paris"}\n}\n```\n',
        [InTextCall("get_weather", PARIS, "fenced_json")],
    ),
    (
        "fenced json, openai shape",
        '```\n{"type": "function", "function": {"name": "search", "arguments": {"q": "x"}}}\n```',
        [InTextCall("search", '{"q":"x"}', "fenced_json")],
    ),
    (
        "langchain style fenced",
        '```json\n{"action": "search", "action_input": "weather in Paris"}\n```',
        [InTextCall("search", "weather in Paris", "fenced_json")],
    ),
    (
        "bare json reply",
        '  {"name": "read_file", "parameters": {"path": "README.md"}}  ',
        [InTextCall("read_file", '{"path":"README.md"}', "bare_json")],
    ),
    (
        "gemma tool_code",
        '```tool_code\nprint(default_api.get_weather(city="Paris"))\n```',
        [InTextCall("get_weather", PARIS, "tool_code")],
    ),
]

PROSE_AND_CODE = [
    "The weather in Paris is sunny, 21°C.",
    'Here is the user object:\n```json\n{"name": "John", "age": 30}\n```',
    # a declared tool name in JSON without arguments is data, not a call
    '```json\n{"name": "get_weather", "description": "Gets the weather"}\n```',
    # an undeclared tool in a fenced block: someone's API example
    '```json\n{"name": "send_email", "arguments": {"to": "a@b.c"}}\n```',
    "```python\ndef get_weather(city):\n    return requests.get(URL, params={'q': city}).json()\n```",
    "```python\nresult = get_weather('Paris')\nprint(result)\n```",
    # explaining a chat template inside a code block does not call anything
    'Hermes models emit:\n```\n<tool_call>\n{"name": "lookup", "arguments": {}}\n</tool_call>\n```',
    "Use the <tool_call> tag when you want to call a tool.",
    "<tool_call>\nnot json at all\n</tool_call>",
    'Call it like `{"name": "x", "arguments": {}}` in your prompt.',
    "[TOOL_CALLS] is the token Mistral uses.",
    '{"city": "Paris", "temp": 21}',
    "",
]


@pytest.mark.parametrize(("style", "text", "expected"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_detects_open_model_styles(style: str, text: str, expected: list[InTextCall]) -> None:
    assert detect(text, DECLARED) == expected


@pytest.mark.parametrize("text", PROSE_AND_CODE)
def test_ordinary_prose_and_code_are_not_calls(text: str) -> None:
    assert detect(text, DECLARED) == []


def test_untagged_forms_need_a_declared_tool() -> None:
    fenced = SAMPLES[11][1]
    assert detect(fenced, DECLARED) and detect(fenced, ()) == [] and detect(fenced, {"other"}) == []
    tagged = SAMPLES[0][1]
    assert detect(tagged, ()) == detect(tagged, DECLARED)  # a chat-template tag counts without declarations


def test_tagged_call_with_non_object_arguments_is_not_a_call() -> None:
    assert detect('<tool_call>{"name": "f", "arguments": 5}</tool_call>') == []
    assert detect("<function=f>[1, 2]</function>") == []


def test_raw_arguments_keep_a_string_the_model_wrote() -> None:
    text = '<tool_call>{"name": "f", "arguments": "{\\"a\\": 1"}</tool_call>'
    assert detect(text) == [InTextCall("f", '{"a": 1', "tool_call_tag")]
    assert json.loads(detect(SAMPLES[2][1])[0].raw_arguments) == {"city": "Paris", "days": 3}


@pytest.mark.parametrize(
    "text",
    [
        '```tool_code\nget_weather(city="\\ud800", n=12345678901234567890)\n```',  # a Python literal
        '<tool_call>{"name": "get_weather", "arguments": {"city": "\\ud800", "n": 12345678901234567890}}</tool_call>',
    ],
)
def test_arguments_written_with_a_lone_surrogate_are_storable(text: str) -> None:
    [call] = detect(text, DECLARED)
    assert json.loads(call.raw_arguments) == {"city": "\ufffd", "n": 12345678901234567890}


TOKENS = [*'<>{}[]"`:,=|_/ \nabcfnotlsjpTOCALS', "<tool_call>", "</tool_call>", "```json\n", "```\n", '"name"']
TOKENS += ['"arguments"', "get_weather", "[TOOL_CALLS]", "[ARGS]", "<function=", "</function>", "<｜tool▁sep｜>"]


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(st.sampled_from(TOKENS), max_size=60))
def test_never_raises(tokens: list[str]) -> None:
    for call in detect("".join(tokens), DECLARED):
        assert call.name and isinstance(call.raw_arguments, str)
