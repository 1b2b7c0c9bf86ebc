"""Session keys without a header: turn one (reply taken from its response) and every later turn (reply
resent in the request) of one conversation share a key; another conversation does not."""

from __future__ import annotations

import json
from typing import Any

from toolwatch.providers import anthropic_messages, openai_chat
from toolwatch.providers.base import ParsedRequest, ParsedResponse, ToolCallOut
from toolwatch.recorder.sessions import conv_key, opening_key

SYSTEM = "You are a careful coding agent.\nAnswer briefly."
TASK = "Fix the failing test in tests/test_api.py"
NO_REPLY = ParsedResponse()


def call(call_id: str, name: str = "read_file") -> ToolCallOut:
    return ToolCallOut(0, call_id, name, '{"path": "tests/test_api.py"}')


def turn1(system: str = SYSTEM, user: str = TASK) -> ParsedRequest:
    return ParsedRequest(system_text=system, first_user_text=user)


def later(
    reply_text: str | None, reply_ids: tuple[str, ...] = (), system: str = SYSTEM, user: str = TASK
) -> ParsedRequest:
    return ParsedRequest(
        system_text=system,
        first_user_text=user,
        first_reply_text=reply_text,
        first_reply_tool_ids=reply_ids,
        prior_tool_call_ids=reply_ids,
    )


# --- built records ----------------------------------------------------------------------------


def test_turn_one_and_turn_two_of_a_tool_calling_conversation_share_a_key() -> None:
    first = conv_key(turn1(), ParsedResponse(tool_calls=(call("call_A1"),)))
    second = conv_key(later("", ("call_A1",)), ParsedResponse(text="The test expects a 404."))
    third = conv_key(later("", ("call_A1",)), ParsedResponse(tool_calls=(call("call_A2"),)))
    assert first != ""
    assert first == second == third


def test_turn_one_and_turn_two_of_a_text_conversation_share_a_key() -> None:
    first = conv_key(turn1(), ParsedResponse(text="Which test fails?"))
    second = conv_key(later("Which test fails?"), ParsedResponse(text="Thanks, looking now."))
    assert first != "" and first == second


def test_tool_call_ids_identify_the_reply_when_there_are_any() -> None:
    # the reply's text may come back reformatted; its tool-call ids are what identifies it
    first = conv_key(turn1(), ParsedResponse(text="Let me read the file.", tool_calls=(call("call_X"),)))
    resent = conv_key(later("Let me read the file, then fix it.", ("call_X",)), NO_REPLY)
    assert first == resent


def test_several_tool_calls_in_the_first_reply() -> None:
    response = ParsedResponse(tool_calls=(call("call_1"), ToolCallOut(1, "call_2", "ls", "{}")))
    first = conv_key(turn1(), response)
    assert conv_key(later(None, ("call_1", "call_2")), NO_REPLY) == first
    assert conv_key(later(None, ("call_1",)), NO_REPLY) != first


def test_a_different_first_reply_is_a_different_conversation() -> None:
    a = conv_key(turn1(), ParsedResponse(tool_calls=(call("call_A1"),)))
    b = conv_key(turn1(), ParsedResponse(tool_calls=(call("call_B1"),)))
    assert a != b
    assert conv_key(later("", ("call_B1",)), NO_REPLY) == b
    c = conv_key(turn1(), ParsedResponse(text="Sure."))
    d = conv_key(turn1(), ParsedResponse(text="Which file?"))
    assert c != d and "" not in (c, d)


def test_a_different_opening_is_a_different_conversation() -> None:
    reply = ParsedResponse(text="Sure.")
    base = conv_key(turn1(), reply)
    assert conv_key(turn1(system="You are a travel agent."), reply) != base
    assert conv_key(turn1(user="Fix the failing test in tests/test_db.py"), reply) != base
    # the same words in the other field are another opening
    assert conv_key(turn1(system="abc", user=""), reply) != conv_key(turn1(system="", user="abc"), reply)


def test_keys_ignore_whitespace_differences() -> None:
    first = conv_key(turn1(), ParsedResponse(text="Which test\n\nfails?  "))
    reformatted = later(
        " Which test fails?",
        system="  You are a careful   coding agent. Answer\tbriefly.\n",
        user="Fix the failing test in\ntests/test_api.py",
    )
    assert conv_key(reformatted, NO_REPLY) == first
    assert opening_key(reformatted) == opening_key(turn1())


def test_keys_do_not_ignore_other_text_differences() -> None:
    first = conv_key(turn1(), ParsedResponse(text="Which test fails?"))
    assert conv_key(later("which test fails?"), NO_REPLY) != first
    assert conv_key(later("Which test fails"), NO_REPLY) != first


def test_a_call_without_an_opening_has_no_key() -> None:
    response = ParsedResponse(text="Hello", tool_calls=(call("call_1"),))
    assert conv_key(ParsedRequest(), response) == ""
    assert conv_key(ParsedRequest(first_reply_text="Hello"), response) == ""
    assert opening_key(ParsedRequest()) == ""


def test_a_first_turn_without_a_reply_has_no_key() -> None:
    # an upstream failure: nothing identifies which conversation it began
    assert conv_key(turn1(), NO_REPLY) == ""
    assert conv_key(turn1(), ParsedResponse(error_type="overloaded_error", error_message="Overloaded")) == ""


def test_a_later_turn_is_keyed_even_when_its_own_response_failed() -> None:
    first = conv_key(turn1(), ParsedResponse(tool_calls=(call("call_A1"),)))
    assert conv_key(later("", ("call_A1",)), NO_REPLY) == first


def test_the_opening_key_ignores_the_reply() -> None:
    key = opening_key(turn1())
    assert key != ""
    assert opening_key(later("Which test fails?")) == key
    assert opening_key(later("", ("call_B1",))) == key
    # the retry of a failed first turn shares it, which lets SQL attach the failure to the retry's session
    assert opening_key(turn1(system="You are a travel agent.")) != key
    assert opening_key(ParsedRequest(system_text=SYSTEM)) != ""
    assert opening_key(ParsedRequest(first_user_text=TASK)) != ""


def test_the_opening_and_conversation_keys_differ() -> None:
    req = later("Which test fails?")
    assert opening_key(req) != conv_key(req, NO_REPLY)


# --- through the provider parsers --------------------------------------------------------------


def body(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


OPENAI_TOOLS = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]


def openai_response(tool_call_id: str) -> bytes:
    return body(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-x",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": tool_call_id,
                                "type": "function",
                                "function": {"name": "read_file", "arguments": '{"path": "a.py"}'},
                            }
                        ],
                    },
                }
            ],
        }
    )


def openai_parse(response: bytes) -> ParsedResponse:
    parser = openai_chat.ChatCompletionParser()
    parser.feed(response)
    return parser.finish()


def test_openai_chat_turns_of_one_conversation_share_a_key() -> None:
    opening = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": [{"type": "text", "text": TASK}]},
    ]
    req1 = openai_chat.parse_request(body({"model": "gpt-x", "messages": opening, "tools": OPENAI_TOOLS}))
    key1 = conv_key(req1, openai_parse(openai_response("call_q1")))

    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_q1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}}
        ],
    }
    messages2 = [*opening, assistant, {"role": "tool", "tool_call_id": "call_q1", "content": "def f(): ..."}]
    req2 = openai_chat.parse_request(body({"model": "gpt-x", "messages": messages2, "tools": OPENAI_TOOLS}))
    key2 = conv_key(req2, openai_parse(openai_response("call_q2")))

    other = conv_key(req1, openai_parse(openai_response("call_r1")))
    assert key1 != "" and key1 == key2
    assert other != key1
    assert opening_key(req1) == opening_key(req2)


def test_anthropic_turns_of_one_conversation_share_a_key() -> None:
    # the system prompt sent as a string, then as blocks with a cache marker: the same opening
    req1 = anthropic_messages.parse_request(
        body(
            {"model": "claude-x", "max_tokens": 100, "system": SYSTEM, "messages": [{"role": "user", "content": TASK}]}
        )
    )
    parser = anthropic_messages.MessagesParser()
    parser.feed(
        body(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-x",
                "content": [
                    {"type": "text", "text": "Reading it."},
                    {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "a.py"}},
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 10, "output_tokens": 5},
            }
        )
    )
    key1 = conv_key(req1, parser.finish())

    req2 = anthropic_messages.parse_request(
        body(
            {
                "model": "claude-x",
                "max_tokens": 100,
                "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": TASK}]},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "text", "text": "Reading it."},
                            {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "a.py"}},
                        ],
                    },
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "..."}]},
                ],
            }
        )
    )
    assert key1 != ""
    assert conv_key(req2, NO_REPLY) == key1
