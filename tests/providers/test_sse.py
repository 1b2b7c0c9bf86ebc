"""SSEDecoder: the WHATWG line and field rules, split-invariance, UTF-8 across chunks, the line limit."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from toolwatch.providers.sse import SSEDecoder, SSEEvent

from .helpers import bytewise, split_at, two_piece_splits

FUZZ = settings(max_examples=200, deadline=None)


def decode(*chunks: bytes, max_line_bytes: int = 1 << 20) -> list[SSEEvent]:
    decoder = SSEDecoder(max_line_bytes)
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.flush()


def test_default_event_name_and_named_events() -> None:
    stream = b"data: one\n\nevent: ping\ndata: two\n\nevent:\ndata: three\n\n"
    assert decode(stream) == [
        SSEEvent("message", "one"),
        SSEEvent("ping", "two"),
        SSEEvent("message", "three"),  # an empty event name means the default
    ]


def test_data_lines_join_with_newline_and_only_one_space_is_removed() -> None:
    stream = b"data:first\ndata:  second\ndata: \ndata\n\n"
    assert decode(stream) == [SSEEvent("message", "first\n second\n\n")]


def test_comments_unknown_fields_and_retry_are_ignored() -> None:
    stream = b": keep-alive\n:\nretry: 3000\nfoo: bar\ndata: x\n: between\n\n"
    assert decode(stream) == [SSEEvent("message", "x")]


def test_event_without_data_is_not_dispatched() -> None:
    assert decode(b"event: lonely\n\n\n\ndata: y\n\n") == [SSEEvent("message", "y")]


def test_id_persists_and_an_id_with_nul_is_ignored() -> None:
    stream = b"id: 7\ndata: a\n\ndata: b\n\nid: x\x00y\ndata: c\n\nid\ndata: d\n\n"
    assert [e.id for e in decode(stream)] == ["7", "7", "7", ""]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(eol: bytes) -> None:
    stream = eol.join([b"event: a", b"data: 1", b"data: 2", b"", b"data: 3", b"", b""])
    assert decode(stream) == [SSEEvent("a", "1\n2"), SSEEvent("message", "3")]


def test_cr_at_chunk_end_pairs_with_lf_in_next_chunk() -> None:
    # were "\r" and "\n" two line ends, the blank line would dispatch "a" alone before "b" arrives
    assert decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [SSEEvent("message", "a\nb")]


def test_bom_is_stripped_only_at_the_start() -> None:
    stream = b"\xef\xbb\xbfdata: a\n\n\xef\xbb\xbfdata: b\n\n"
    assert decode(stream) == [SSEEvent("message", "a")]  # the second line's field name is "\ufeffdata"


MIXED = (
    "\ufeffevent: delta\r\ndata: 東京 🌤️ Zürich\r\n\r\n"
    ': comment\rdata: line one\rdata: line two é\r\rid: 42\ndata: {"k": "☔"}\n\n'
    "data: no blank line at the end"
).encode()
MIXED_EVENTS = [
    SSEEvent("delta", "東京 🌤️ Zürich"),
    SSEEvent("message", "line one\nline two é"),
    SSEEvent("message", '{"k": "☔"}', "42"),
    SSEEvent("message", "no blank line at the end", "42"),
]


def test_mixed_sample_split_at_every_offset_and_bytewise() -> None:
    assert decode(MIXED) == MIXED_EVENTS
    for pieces in two_piece_splits(MIXED):
        assert decode(*pieces) == MIXED_EVENTS, pieces
    assert decode(*bytewise(MIXED)) == MIXED_EVENTS


def test_multibyte_character_split_across_chunks() -> None:
    emoji = "🌂".encode()
    for cut in range(1, len(emoji)):
        assert decode(b"data: " + emoji[:cut], emoji[cut:] + b"\n\n") == [SSEEvent("message", "🌂")]


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert decode(b"data: a\xff\xfeb\n\n") == [SSEEvent("message", "a\ufffd\ufffdb")]


def test_a_surrogate_encoded_as_utf8_never_reaches_the_text() -> None:
    # Python's strict UTF-8 decoder refuses encoded surrogates: the text stays encodable
    [event] = decode(b"data: a\xed\xa0\x80b\n\n")
    assert event.data == "a\ufffd\ufffd\ufffdb" and event.data.encode()


def test_feed_returns_events_as_their_blank_line_arrives() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\ndata: b\n") == [SSEEvent("message", "a")]
    assert decoder.feed(b"\n") == [SSEEvent("message", "b")]
    assert decoder.flush() == []
    assert not decoder.unterminated_event


def test_flush_dispatches_an_event_cut_before_its_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: partial") == [SSEEvent("message", "a")]
    assert decoder.flush() == [SSEEvent("message", "partial")]
    assert decoder.unterminated_event


def test_over_long_line_is_dropped_with_its_event_and_counted() -> None:
    long_line = b"data: " + b"x" * 100 + b"\n"
    stream = b"data: before\n\n" + b"data: head\n" + long_line + b"\n" + b"data: after\n\n"
    for pieces in [[stream], *two_piece_splits(stream)]:
        decoder = SSEDecoder(max_line_bytes=50)
        events = [e for p in pieces for e in decoder.feed(p)] + decoder.flush()
        assert events == [SSEEvent("message", "before"), SSEEvent("message", "after")]
        assert (decoder.dropped_lines, decoder.dropped_events) == (1, 1)


def test_line_limit_bounds_the_pending_buffer() -> None:
    decoder = SSEDecoder(max_line_bytes=1000)
    for _ in range(100):  # 100 kB without a line end
        assert decoder.feed(b"y" * 1000) == []
        assert decoder.buffered_bytes <= 1000
    # the line ends, then the blank line ends its (discarded) event
    assert decoder.feed(b"\n\ndata: ok\n\n") == [SSEEvent("message", "ok")]
    assert (decoder.dropped_lines, decoder.dropped_events) == (1, 1)


def test_line_exactly_at_the_limit_is_kept() -> None:
    line = b"data: " + b"z" * 44  # 50 bytes
    assert decode(line + b"\n\n", max_line_bytes=50) == [SSEEvent("message", "z" * 44)]
    assert decode(line[:20], line[20:] + b"\n\n", max_line_bytes=50) == [SSEEvent("message", "z" * 44)]


def test_event_data_is_bounded_too() -> None:
    decoder = SSEDecoder(max_line_bytes=30)
    events = decoder.feed(b"data: 0123456789\n" * 5 + b"\ndata: small\n\n")
    assert events == [SSEEvent("message", "small")]
    assert decoder.dropped_events == 1


# --- properties -----------------------------------------------------------------------------------

FIELD_TEXT = st.text(st.characters(exclude_characters="\r\n\x00", exclude_categories=["Cs"]), max_size=12)


@FUZZ
@given(
    events=st.lists(
        st.tuples(
            st.one_of(st.none(), FIELD_TEXT.filter(lambda s: s != "")),
            st.lists(FIELD_TEXT, min_size=1, max_size=3),
        ),
        max_size=6,
    ),
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
    cuts=st.lists(st.integers(0, 2000), max_size=8),
)
def test_encoded_events_round_trip_under_any_split(
    events: list[tuple[str | None, list[str]]], eol: str, cuts: list[int]
) -> None:
    text = ""
    for name, lines in events:
        if name is not None:
            text += f"event: {name}{eol}"
        text += "".join(f"data: {line}{eol}" for line in lines) + eol
    expected = [SSEEvent(name or "message", "\n".join(lines)) for name, lines in events]
    assert decode(*split_at(text.encode(), cuts)) == expected


@FUZZ
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=10))
def test_arbitrary_bytes_never_raise_and_do_not_depend_on_the_split(data: bytes, cuts: list[int]) -> None:
    whole = SSEDecoder(max_line_bytes=64)
    expected = whole.feed(data) + whole.flush()
    pieces = SSEDecoder(max_line_bytes=64)
    got = [e for p in split_at(data, cuts) for e in pieces.feed(p)] + pieces.flush()
    assert got == expected
    assert (pieces.dropped_lines, pieces.dropped_events) == (whole.dropped_lines, whole.dropped_events)


@FUZZ
@given(
    lines=st.lists(
        st.sampled_from([b"data: x", b"data:", b":c", b"", b"event: e", b"id: 1", b"data: \xc3\xa9", b"\xff"]),
        max_size=20,
    ),
    eols=st.lists(st.sampled_from([b"\n", b"\r\n", b"\r"]), min_size=20, max_size=20),
    cuts=st.lists(st.integers(0, 300), max_size=10),
)
def test_sse_shaped_input_does_not_depend_on_the_split(lines: list[bytes], eols: list[bytes], cuts: list[int]) -> None:
    data = b"".join(line + eol for line, eol in zip(lines, eols, strict=False))
    assert decode(*split_at(data, cuts)) == decode(data)


class LineByLine(SSEDecoder):
    """The decoder with its whole-chunk fast path turned off: the reference it must agree with."""

    def events_of(self, chunk: bytes) -> list[tuple[str, str, str | None]]:
        return self._by_line(chunk)


VALUES = [
    b"",
    b"x",
    b" lead",
    b'{"k": 12}',
    b"\xe2\x82",
    b"\xff",
    "é☔".encode(),
    b"a:b",
    b"\x00",
    b"01234",
    b"0123456789",
]
LINES = st.one_of(
    st.just(b""),
    st.tuples(
        st.sampled_from([b"data: ", b"data:", b"event: ", b"id: ", b": ", b"retry: ", b"other: "]),
        st.sampled_from(VALUES),
    ).map(b"".join),
)


EOLS = st.sampled_from([b"\n", b"\n", b"\n", b"\r\n", b"\r"])
# mostly LF only (the whole-chunk path), events as providers send them, sometimes other line ends
EVENT_LINES = st.lists(
    st.one_of(
        st.lists(st.tuples(LINES, st.just(b"\n")), max_size=3),
        st.tuples(st.sampled_from([b"event: ", b"event:", b"event:  "]), st.sampled_from(VALUES)).map(
            lambda p: [(b"".join(p), b"\n"), (b"data: " + p[1], b"\n"), (b"", b"\n")]
        ),
        st.sampled_from(VALUES).map(lambda v: [(b"data:" + v, b"\n"), (b"", b"\n")]),
        st.lists(st.tuples(LINES, EOLS), max_size=2),
    ),
    max_size=12,
).map(lambda groups: [line for group in groups for line in group])


@FUZZ
@given(bom=st.booleans(), lines=EVENT_LINES, cut=st.integers(0, 400), limit=st.sampled_from([6, 16, 1 << 20]))
@example(bom=True, lines=[(b"data: a", b"\n"), (b"", b"\n")], cut=0, limit=1 << 20)
@example(bom=False, lines=[(b"data: 0123456789", b"\n"), (b"data: 01234", b"\n"), (b"", b"\n")], cut=17, limit=16)
def test_the_whole_chunk_path_agrees_with_the_line_by_line_one(
    bom: bool, lines: list[tuple[bytes, bytes]], cut: int, limit: int
) -> None:
    stream = (b"\xef\xbb\xbf" if bom else b"") + b"".join(line + eol for line, eol in lines)
    fast, slow = SSEDecoder(limit), LineByLine(limit)
    got = fast.feed(stream[:cut]) + fast.feed(stream[cut:]) + fast.flush()
    want = slow.feed(stream[:cut]) + slow.feed(stream[cut:]) + slow.flush()
    assert got == want
    assert (fast.dropped_lines, fast.dropped_events, fast.unterminated_event, fast.notes()) == (
        slow.dropped_lines,
        slow.dropped_events,
        slow.unterminated_event,
        slow.notes(),
    )
