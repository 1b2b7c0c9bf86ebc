"""Redaction: the needle search finds every match the combined expression would, and replaces exactly what
``pattern.sub`` over the whole text replaces, for text and for bytes that are not UTF-8."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from toolwatch.recorder.redact import _FOLDS, DEFAULT_PATTERNS, NEEDLES, Redactor

SECRETS = [
    "sk-ant-api03-" + "A" * 24,
    "sk-proj-" + "b" * 30,
    "AIza" + "C" * 35,
    "AKIA" + "D" * 16,
    "ASIA" + "E" * 16,
    'aws_secret_access_key = "' + "F" * 40 + '"',
    "AWSſECRET_ACCESS_KEY:" + "g" * 40,
    "ghp_" + "h" * 36,
    "xoxb-" + "1" * 12,
    "Bearer " + "j" * 20,
    "bEaReR\t" + "k" * 16,
    "eyJ" + "l" * 9 + ".eyJ" + "m" * 9 + "." + "n" * 9,
    "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----",
]
# pieces that start needles, overlap them, or nearly match
FRAGMENTS = [
    *SECRETS,
    "sk-",
    "task-",
    "sk-sk-",
    "awsk-" + "p" * 24,
    "AKIASIA",
    "ASIAKIA" + "Q" * 16,
    "xoxox",
    "eyJeyJ",
    "bear",
    "beabearer ",
    "-----BEGIN -----BEGIN ",
    "gh_",
    "ſ",
    "\u212a",
    "İ",
    "ı",
    "é",
    "日本",
    "\ud800",
    "\udcff",
    "_",
    "-",
    " ",
    "\n",
    ".",
    '"',
    "=",
    "x",
    "A",
    "9",
]
texts = st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join)


def reference(redactor: Redactor, text: str) -> str:
    assert redactor._pattern is not None
    return redactor._pattern.sub(redactor._replace, text)


REDACTOR = Redactor()


def test_every_built_in_pattern_has_needles() -> None:
    assert set(NEEDLES) == set(DEFAULT_PATTERNS)
    for name, pattern in DEFAULT_PATTERNS.items():  # each secret above starts with one of its needles
        for secret in SECRETS:
            match = re.search(pattern, secret)
            if match is not None:
                assert secret.startswith(tuple(NEEDLES[name]), match.start()), (name, secret)


def test_the_case_folds_are_every_character_re_matches() -> None:
    """The case-insensitive needles spell each letter every way ``re`` matches it with IGNORECASE."""
    letters = sorted({c.lower() for n in ("aws_secret_key", "bearer_token") for word in NEEDLES[n] for c in word})
    matcher = re.compile("(?i)[" + "".join(letters) + "]")
    for code in range(0x110000):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF or not matcher.fullmatch(char):
            continue
        assert any(char in _FOLDS.get(letter, letter + letter.upper()) for letter in letters), hex(code)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(texts)
@example("x " + " y ".join(SECRETS) + " z")
def test_text_is_redacted_as_the_whole_expression_would(text: str) -> None:
    assert REDACTOR.text(text) == reference(REDACTOR, text)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(texts, st.lists(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\x80", b"ok"]), max_size=3))
def test_bytes_are_redacted_as_the_whole_expression_would(text: str, junk: list[bytes]) -> None:
    raw = text.encode("utf-8", "surrogatepass") + b"".join(junk) + text[::-1].encode("utf-8", "surrogatepass")
    decoded = raw.decode("utf-8", "surrogateescape")
    expected = reference(REDACTOR, decoded)
    got = REDACTOR.data(raw)
    assert got == (raw if expected == decoded else expected.encode("utf-8", "surrogateescape"))


def test_custom_patterns_scan_the_whole_text() -> None:
    redactor = Redactor({"internal": r"tok_[a-z]{8}"})
    assert redactor.text("a tok_abcdefgh and sk-" + "z" * 24) == "a [REDACTED:internal] and [REDACTED:openai_key]"
    assert Redactor({"internal": r"tok_[a-z]{8}"}, defaults=False).text("sk-" + "z" * 24) == "sk-" + "z" * 24
    assert Redactor({}, defaults=False).data(b"sk-" + b"z" * 24) == b"sk-" + b"z" * 24


def test_text_without_a_needle_is_returned_as_is() -> None:
    body = b'{"messages": [{"role": "user", "content": "what is the weather in Paris?"}]}' * 50
    assert REDACTOR.data(body) is body
