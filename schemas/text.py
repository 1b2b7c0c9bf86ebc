"""Text from the wire, made safe to store: every string that reaches a record can be encoded as UTF-8.

Header bytes that are not UTF-8 arrive as surrogate escapes (``\\udce9``), and JSON can spell lone
surrogates (``"\\ud800"``); either would make a frame or an insert fail later. Each such code point
becomes U+FFFD. The bytes forwarded to the agent or the upstream are never touched; only what toolwatch
keeps is.
"""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def safe_text(text: str) -> str:
    """``text`` with every surrogate code point replaced by U+FFFD (the text itself when there is none)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def safe_opt(text: str | None) -> str | None:
    return None if text is None else safe_text(text)


def safe_map(values: dict[str, str]) -> dict[str, str]:
    return {safe_text(k): safe_text(v) for k, v in values.items()}
