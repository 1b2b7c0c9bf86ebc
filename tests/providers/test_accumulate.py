"""The shared shape of the provider parsers: ``RequestFields`` and ``Accumulator`` freeze what a parser
gathered into its record, ``BufferedJSONParser`` hands a whole body to ``parse`` in any split, and
``SSEEventParser`` dispatches events, adds the decoder's notes and asks ``_close`` whether the stream ended."""

from __future__ import annotations

import json
from typing import Any

import pytest

from toolwatch.providers.accumulate import Accumulator, BufferedJSONParser, RequestFields, SSEEventParser
from toolwatch.providers.base import ParsedRequest, ParsedResponse, ToolCallOut, ToolDecl, ToolResultIn, Usage
from toolwatch.providers.openai_chat import ChatCompletionStreamParser

# --- RequestFields --------------------------------------------------------------------------------


def test_a_body_that_is_not_an_object_is_the_result_itself() -> None:
    assert RequestFields.load(b"[]") == ParsedRequest(error="request body is not a JSON object")
    failed = RequestFields.load(b"{")
    assert isinstance(failed, ParsedRequest) and (failed.error or "").startswith("request body is not JSON: ")


def test_nothing_gathered_gives_the_defaults() -> None:
    req = RequestFields.load(b'{"model": "m", "stream": true}')
    assert isinstance(req, RequestFields)
    assert req.result(0) == ParsedRequest(model="m", stream=True)
    assert RequestFields({"stream": "yes", "model": 5}).result(3) == ParsedRequest(message_count=3)


def test_declarations_and_their_problems() -> None:
    req = RequestFields({})
    req.declare({"name": "f"}, "f", {"type": "object", "properties": {}})
    req.declare({"name": "g"}, "g")
    req.declare({"type": "function", "n": 1}, None)
    req.declare([1], None, what="function declaration")
    assert req.tools == [ToolDecl("f", '{"type":"object","properties":{}}'), ToolDecl("g", None)]
    assert req.problems == [
        """tool declaration without a name: '{"type":"function","n":1}'""",
        "function declaration without a name: '[1]'",
    ]


def test_turns_that_are_not_a_list_are_a_problem() -> None:
    req = RequestFields({"messages": [1, 2], "contents": {"a": 1}})
    assert req.turns("messages") == [1, 2] and req.turns("contents") == [] and req.turns("input") == []
    assert req.problems == ["contents is missing or not a list", "input is missing or not a list"]


def test_the_result_holds_what_was_gathered() -> None:
    req = RequestFields({"model": "m"}, problems=["a", "b"], system=["S1", "S2"], first_user="U")
    req.results.append(ToolResultIn("c1", "ok", True))
    req.prior += ["c1"]
    req.reply_text, req.reply_ids = "R", ("c1",)
    result = req.result(4, stream=True)
    assert result == ParsedRequest(
        model="m",
        stream=True,
        tool_results=(ToolResultIn("c1", "ok", True),),
        prior_tool_call_ids=("c1",),
        message_count=4,
        error="a; b",
        system_text="S1\nS2",
        first_user_text="U",
        first_reply_text="R",
        first_reply_tool_ids=("c1",),
    )
    # a request continuing a previous response carries no opening of its own
    continued = req.result(4, previous_response_id="resp_1")
    assert continued.previous_response_id == "resp_1" and continued.prior_tool_call_ids == ("c1",)
    opening = (continued.system_text, continued.first_user_text, continued.first_reply_text)
    assert opening + (continued.first_reply_tool_ids,) == ("", "", None, ())


# --- Accumulator ----------------------------------------------------------------------------------


def test_the_accumulator_freezes_into_a_response() -> None:
    acc = Accumulator("\n", model="m", response_id="r", finish_reason="stop", usage=Usage(1, 2, 3, 4))
    acc.text += ["one", "two"]
    acc.calls.append(ToolCallOut(0, "c", "f", "{}"))
    acc.error = ("overloaded_error", "Overloaded")
    acc.skipped = 2
    assert acc.result(complete=True) == ParsedResponse(
        model="m",
        response_id="r",
        tool_calls=(ToolCallOut(0, "c", "f", "{}"),),
        finish_reason="stop",
        usage=Usage(1, 2, 3, 4),
        text="one\ntwo",
        error_type="overloaded_error",
        error_message="Overloaded",
        complete=True,
        skipped=2,
    )
    assert Accumulator().result(complete=False) == ParsedResponse()
    assert Accumulator(error=(None, None)).result(True) == ParsedResponse(complete=True)


def test_problems_keep_their_order_and_recurring_ones_are_noted_once() -> None:
    acc = Accumulator()
    for _ in range(3):
        acc.note("a")
        acc.note_once("choices other than index 0 ignored")
    acc.note_once("b")
    assert acc.result(False).errors == ("a", "choices other than index 0 ignored", "a", "a", "b")


# --- SSEEventParser -------------------------------------------------------------------------------


class Echo(SSEEventParser):
    """Each event's data is a tool call name; ``end`` completes the stream."""

    def __init__(self) -> None:
        super().__init__(text_sep="|")
        self.ended = False

    def _event(self, name: str, data: str, done: list[ToolCallOut]) -> None:
        if data == "end":
            self.ended = True
            return
        call = ToolCallOut(len(self._acc.calls), "", data, "")
        self._acc.calls.append(call)
        self._acc.text.append(name)
        done.append(call)

    def _close(self) -> bool:
        self._acc.note("closed")
        return self.ended


def test_events_are_dispatched_as_they_complete() -> None:
    parser = Echo()
    assert parser.feed(b"data: f\n") == []
    assert [c.name for c in parser.feed(b"\nevent: x\ndata: g\n\ndata: end")] == ["f", "g"]
    result = parser.finish()  # the last event, without its blank line, is dispatched too
    assert result.complete and result.text == "message|x"
    assert result.errors == ("the last event was not followed by a blank line", "closed")


def test_a_stream_without_its_end_is_incomplete() -> None:
    parser = Echo()
    parser.feed(b"data: f\n\n")
    result = parser.finish()
    assert not result.complete and [c.name for c in result.tool_calls] == ["f"] and result.errors == ("closed",)


# --- BufferedJSONParser --------------------------------------------------------------------------


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


@pytest.mark.parametrize("split", [False, True])
def test_a_long_integer_in_a_stream_is_kept_exactly_whole_or_split(split: bool) -> None:
    """``feed`` scans a whole chunk for long integers once; one in any event sends it to the exact parser."""
    big = 123456789012345678901234567890
    events = [
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "hi"}}]},
        {"object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": big, "completion_tokens": 3}},
    ]
    stream = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    parser = ChatCompletionStreamParser()
    for chunk in [stream[i : i + 7] for i in range(0, len(stream), 7)] if split else [stream]:
        parser.feed(chunk)
    resp = parser.finish()
    assert resp.usage.input_uncached == big and resp.usage.output == 3 and resp.text == "hi" and resp.complete
