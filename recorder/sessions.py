"""Session keys computed per call, with no state: grouping happens later in ClickHouse SQL.

Agents resend the whole conversation every turn, so its opening identifies it: the system prompt, the
first user message and the first assistant reply (whose tool-call ids are unique). Turn one has no reply
in its request, so its own response supplies it. ``opening_key`` (system and first user message only)
lets SQL attach a failed first turn, which has no reply, to the session its retry started.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from toolwatch.providers.base import ParsedRequest, ParsedResponse

_WS = re.compile(r"\s+")


@lru_cache(maxsize=4096)
def _norm(text: str) -> str:
    """Whitespace-folded text; cached because agents resend the same system prompt every turn."""
    return _WS.sub(" ", text).strip()


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x1e".join(parts).encode(), digest_size=16).hexdigest()


def reply_key(text: str, tool_ids: tuple[str, ...] | list[str]) -> str:
    return "ids:" + ",".join(tool_ids) if tool_ids else "text:" + _norm(text)


@lru_cache(maxsize=4096)
def _opening(system: str, first_user: str) -> str:
    return _digest(_norm(system), _norm(first_user))


def opening_key(req: ParsedRequest) -> str:
    if not req.system_text and not req.first_user_text:
        return ""
    return _opening(req.system_text, req.first_user_text)


def conv_key(req: ParsedRequest, resp: ParsedResponse, opening: str | None = None) -> str:
    """ "" when the call cannot be placed (no opening, or a first turn that got no reply). ``opening`` is
    ``opening_key(req)`` when the caller has it already."""
    if opening is None:
        opening = opening_key(req)
    if not opening:
        return ""
    if req.first_reply_text is not None or req.first_reply_tool_ids:
        reply = reply_key(req.first_reply_text or "", req.first_reply_tool_ids)
    elif resp.text or resp.tool_calls:
        reply = reply_key(resp.text, [tc.id for tc in resp.tool_calls])
    else:
        return ""
    return _digest(opening, reply)
