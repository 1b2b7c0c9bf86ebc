"""Shared by the provider tests: the wire samples of each endpoint, replaying bytes in pieces, random
JSON shaped like a provider's, and a mock HTTP client that answers the official SDKs with a sample."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx2
from hypothesis import strategies as st

from toolwatch.providers import registry
from toolwatch.providers.base import ParsedResponse, ResponseParser, ToolCallOut

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
# the folder of wire samples of each registered endpoint (tests/fixtures/<folder>/README.md says what they are)
FOLDERS: dict[str, str] = {
    "chat_completions": "openai_chat",
    "messages": "anthropic_messages",
    "responses": "openai_responses",
    "generate_content": "gemini",
    "stream_generate_content": "gemini",
}


def fixture(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


def _samples(endpoint: str) -> list[str]:
    return sorted(p.name for p in (FIXTURES / FOLDERS[endpoint]).iterdir() if p.suffix in (".json", ".sse"))


def request_samples(endpoint: str) -> list[str]:
    """The request bodies among an endpoint's samples (``request_*.json``)."""
    return [n for n in _samples(endpoint) if n.startswith("request_")]


def response_samples(endpoint: str) -> list[str]:
    """The response bodies an endpoint sends: ``*.sse`` streams, and JSON bodies. Gemini's folder serves
    two endpoints: ``generateContent`` answers with one JSON object, ``streamGenerateContent`` with SSE
    (``alt=sse``) or a JSON array of chunks (``array_*.json``)."""
    names = [n for n in _samples(endpoint) if not n.startswith("request_")]
    if endpoint == "generate_content":
        return [n for n in names if n.endswith(".json") and not n.startswith("array_")]
    if endpoint == "stream_generate_content":
        return [n for n in names if n.endswith(".sse") or n.startswith("array_")]
    return names


def sample(endpoint: str, name: str) -> bytes:
    return fixture(FOLDERS[endpoint], name)


def parser_for(endpoint: str, name: str) -> Callable[[], ResponseParser]:
    """The registered parser factory for a response sample: its transport is told by its name."""
    entry = registry.ENDPOINTS[endpoint]
    return entry.stream_parser if name.endswith(".sse") else entry.json_parser


def distinct_parsers() -> list[str]:
    """One endpoint for each distinct pair of response parsers (Gemini's two endpoints share theirs)."""
    first: dict[tuple[object, object], str] = {}
    for name, entry in registry.ENDPOINTS.items():
        first.setdefault((entry.json_parser, entry.stream_parser), name)
    return list(first.values())


def strings(value: object) -> Iterator[str]:
    """Every string in a parse result: fields of (frozen) dataclasses, tuples, lists, dict keys and values."""
    if isinstance(value, str):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from strings(getattr(value, f.name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)


def assert_storable(value: object) -> None:
    """Every string in ``value`` can be encoded as UTF-8 (a lone surrogate cannot, and wedges an insert)."""
    for text in strings(value):
        text.encode("utf-8")


def replay(factory: Callable[[], ResponseParser], pieces: Iterable[bytes]) -> tuple[list[ToolCallOut], ParsedResponse]:
    """Feed the pieces in order; return the calls ``feed`` reported (in order) and ``finish``'s result."""
    parser = factory()
    reported: list[ToolCallOut] = []
    for piece in pieces:
        reported += parser.feed(piece)
    return reported, parser.finish()


def two_piece_splits(data: bytes) -> Iterator[list[bytes]]:
    """``[data[:i], data[i:]]`` for every offset, including the empty ends."""
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def events_of(stream: bytes) -> list[bytes]:
    """The stream cut after each blank line, i.e. one SSE event per piece (LF streams only)."""
    parts = stream.split(b"\n\n")
    pieces = [p + b"\n\n" for p in parts[:-1]]
    return pieces + ([parts[-1]] if parts[-1] else [])


def mock_http(body: bytes, content_type: str, status: int = 200) -> httpx2.Client:
    """An HTTP client for the official SDKs whose every request is answered with ``body``, no socket."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=body, headers={"content-type": content_type})

    return httpx2.Client(transport=httpx2.MockTransport(handler))


# each API's own keys and words, so that random JSON reaches deep into its parsers
WIRE_WORDS: dict[str, tuple[str, str]] = {
    "openai_chat": (
        "model stream tools functions messages role content tool_calls tool_call_id id type function custom name"
        " parameters arguments input text index choices delta message finish_reason usage prompt_tokens"
        " completion_tokens prompt_tokens_details cached_tokens error code object function_call",
        "user assistant tool function custom text chat.completion.chunk stop",
    ),
    "anthropic_messages": (
        "model stream tools system messages role content type id name input input_schema tool_use_id is_error"
        " text index content_block delta partial_json message usage input_tokens output_tokens"
        " cache_read_input_tokens stop_reason cache_creation_input_tokens error",
        "user assistant tool_use tool_result text message_start content_block_start content_block_delta"
        " content_block_stop input_json_delta text_delta message_delta",
    ),
    "openai_responses": (
        "type id call_id name arguments input output output_index content_index item item_id delta text content"
        " role response status usage input_tokens output_tokens input_tokens_details cached_tokens"
        " incomplete_details reason error code message model tools parameters instructions"
        " previous_response_id stream",
        "function_call function_call_output custom_tool_call message reasoning output_text input_text assistant"
        " user system function response.output_item.added response.output_item.done"
        " response.function_call_arguments.delta response.output_text.delta response.completed"
        " response.function_call_arguments.done error completed incomplete",
    ),
    "gemini": (
        "candidates content parts role text thought thoughtSignature functionCall functionResponse function_call"
        " name args id response output error finishReason index usageMetadata promptTokenCount"
        " candidatesTokenCount cachedContentTokenCount thoughtsTokenCount modelVersion responseId promptFeedback"
        " blockReason contents systemInstruction tools functionDeclarations parameters parametersJsonSchema type"
        " code message status",
        "model user STOP OBJECT STRING MAX_TOKENS get_weather INVALID_ARGUMENT",
    ),
}


@functools.cache
def wire_json(endpoint: str) -> st.SearchStrategy[Any]:
    """Random JSON built from the keys and words of an endpoint's API (see ``json_values``)."""
    keys, words = WIRE_WORDS[FOLDERS[endpoint]]
    return json_values(keys.split(), words.split())


def json_values(keys: list[str], words: list[str]) -> st.SearchStrategy[Any]:
    """Random JSON built from a provider's own keys and words, so that it reaches deep into a parser."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6),
        st.sampled_from(words),
    )
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(keys), inner, max_size=6),
        max_leaves=12,
    )


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        yield from _paths(value, (*prefix, key))


def _replaced(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(obj) if isinstance(obj, dict) else list(obj)
    copy[path[0]] = _replaced(obj[path[0]], path[1:], value)
    return copy


def mutate(data: st.DataObject, obj: Any, values: st.SearchStrategy[Any], count: int = 3) -> Any:
    """``obj`` (a recorded sample's JSON) with up to ``count`` random subtrees replaced by random values:
    every place a parser reads is, in some example, of the wrong type or missing its contents."""
    for _ in range(data.draw(st.integers(1, count))):
        paths = list(_paths(obj))
        obj = _replaced(obj, paths[data.draw(st.integers(0, len(paths) - 1))], data.draw(values))
    return obj


def mutate_stream(data: st.DataObject, stream: bytes, values: st.SearchStrategy[Any]) -> bytes:
    """A recorded LF stream with the JSON of one of its ``data:`` lines mutated (see ``mutate``)."""
    events = events_of(stream)
    index = data.draw(st.integers(0, len(events) - 1))
    lines = events[index].split(b"\n")
    for n, line in enumerate(lines):
        try:
            obj = json.loads(line[6:]) if line.startswith(b"data: {") else None
        except ValueError:  # the cut-off last line of a broken stream
            continue
        if obj is not None:
            lines[n] = b"data: " + json.dumps(mutate(data, obj, values)).encode()
    events[index] = b"\n".join(lines)
    return b"".join(events)
