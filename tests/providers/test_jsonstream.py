"""ObjectSplitter: top-level JSON objects out of a JSON array (or a lone object) split anywhere."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from toolwatch.providers.jsonstream import ObjectSplitter

from .helpers import split_at

FUZZ = settings(max_examples=200, deadline=None)


def split(pieces: list[bytes]) -> tuple[list[bytes], ObjectSplitter]:
    splitter = ObjectSplitter()
    found: list[bytes] = []
    for piece in pieces:
        found += splitter.feed(piece)
    return found, splitter


TRICKY = [
    {"s": 'brace } and [ bracket ] in a string, "quoted" \\ backslash'},
    {"nested": {"a": [1, {"b": [[], {}]}], "esc": '\\\\"}'}, "u": "東京 🌤️ \u00e9"},
    {},
]


def test_array_of_objects_with_braces_inside_strings() -> None:
    raw = ("[" + ",\r\n".join(json.dumps(o, ensure_ascii=False, indent=2) for o in TRICKY) + "]").encode()
    found, splitter = split([raw])
    assert [json.loads(f) for f in found] == TRICKY
    assert (splitter.array_opened, splitter.array_closed, splitter.notes()) == (True, True, [])


def test_a_single_object() -> None:
    found, splitter = split([b'  {"a": "}"}\n'])
    assert found == [b'{"a": "}"}'] and not splitter.array_opened and splitter.notes() == []


def test_cut_mid_object_and_garbage_are_noted() -> None:
    found, splitter = split([b'[{"a": 1}, x {"b": "unfinished'])
    assert found == [b'{"a": 1}']
    assert splitter.notes() == [
        "the stream ended inside a JSON object (17 bytes dropped)",
        "the JSON array was not closed",
        "1 byte(s) outside any JSON object skipped",
    ]


@FUZZ
@given(
    objects=st.lists(
        st.recursive(
            st.dictionaries(st.text(max_size=4), st.text(alphabet='{}[]"\\ab東', max_size=6), max_size=3),
            lambda inner: st.dictionaries(st.text(max_size=3), inner | st.lists(inner, max_size=2), max_size=3),
            max_leaves=8,
        ),
        max_size=5,
    ),
    indent=st.sampled_from([None, 1, 2]),
    cuts=st.lists(st.integers(0, 2000), max_size=10),
)
def test_any_split_of_any_array_gives_its_objects(objects: list[Any], indent: int | None, cuts: list[int]) -> None:
    raw = json.dumps(objects, indent=indent, ensure_ascii=False).encode()
    found, splitter = split(split_at(raw, cuts))
    assert [json.loads(f) for f in found] == objects
    assert splitter.notes() == []


@FUZZ
@given(raw=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=6))
def test_random_bytes_never_raise_and_splits_agree(raw: bytes, cuts: list[int]) -> None:
    found, splitter = split(split_at(raw, cuts))
    assert (found, splitter.notes()) == (split([raw])[0], split([raw])[1].notes())
