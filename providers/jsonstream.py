"""Incremental splitter for a stream of JSON objects: one object, or a JSON array of objects.

Gemini's ``streamGenerateContent`` without ``alt=sse`` sends its chunks as one JSON array that grows as
the model writes (``[{...}\\r\\n,{...}\\r\\n]``). ``ObjectSplitter.feed`` takes bytes split anywhere and
returns the text of each top-level object completed by them, so a stream cut mid-array still yields
every object that arrived whole. A single object (a non-streamed body) is split the same way.

Only structure is tracked (strings, escapes, nesting depth); each object is parsed later by the caller.
Structural characters are ASCII, so scanning bytes is safe for UTF-8 text. Bytes outside an object that
are not array punctuation or whitespace are skipped and counted in ``garbage_bytes``.
"""

from __future__ import annotations

import re

__all__ = ["ObjectSplitter"]

_STRUCT = re.compile(rb'["{}\[\]]')
# the rest of a string: plain bytes and whole escapes, stopping at its closing quote, at a backslash that
# ends the chunk, or at the chunk's end (possessive, so a megabyte of escapes is one C-speed match)
_STRING_BODY = re.compile(rb'[^"\\]*+(?:\\.[^"\\]*+)*+', re.S)
_OUTSIDE = re.compile(rb"[^\s\[\],]")
_GARBAGE = re.compile(rb"[^\s\[\],{]+")  # a run of bytes outside any object that cannot start one


class ObjectSplitter:
    """Pure, incremental; see the module docstring."""

    def __init__(self) -> None:
        self.array_opened = False
        self.array_closed = False
        self.objects = 0
        self.garbage_bytes = 0
        self._buf = bytearray()  # the current, unfinished object
        self._depth = 0
        self._in_string = False
        self._escape = False

    def feed(self, chunk: bytes) -> list[bytes]:
        """Consume bytes; return the complete top-level objects they finished, in order."""
        found: list[bytes] = []
        pos = 0
        while pos < len(chunk):
            if self._depth == 0:
                pos = self._outside(chunk, pos)
                continue
            start = pos
            pos = self._inside(chunk, pos)
            self._buf += chunk[start:pos]
            if self._depth == 0:
                found.append(bytes(self._buf))
                self._buf.clear()
                self.objects += 1
        return found

    def _outside(self, chunk: bytes, pos: int) -> int:
        """Between objects: skip whitespace and array punctuation; return where an object starts."""
        while pos < len(chunk):
            match = _OUTSIDE.search(chunk, pos)
            end = match.start() if match else len(chunk)
            self._punctuation(chunk[pos:end])
            if match is None:
                return len(chunk)
            if chunk[end] == 0x7B:  # {
                self._depth = 1
                self._buf += b"{"
                return end + 1
            garbage = _GARBAGE.match(chunk, end)
            pos = garbage.end() if garbage else end + 1
            self.garbage_bytes += pos - end
        return pos

    def _punctuation(self, run: bytes) -> None:
        """Whitespace and array punctuation: the first ``[`` opens the array (another is garbage), and
        a ``]`` closes it if it is open by then."""
        opened, first_open, last_close = self.array_opened, run.find(b"["), run.rfind(b"]")
        if first_open >= 0:
            self.garbage_bytes += run.count(b"[") - (0 if opened else 1)
            self.array_opened = True
        if last_close >= 0:
            self.array_closed = opened or 0 <= first_open < last_close

    def _inside(self, chunk: bytes, pos: int) -> int:
        """Inside an object: return the position after its closing brace, or the chunk's end."""
        while pos < len(chunk):
            if self._in_string:
                if self._escape:
                    self._escape = False
                    pos += 1
                    continue
                match = _STRING_BODY.match(chunk, pos)
                pos = match.end() if match else pos
                if pos == len(chunk):
                    return pos
                if chunk[pos] == 0x5C:  # \ ending the chunk: the byte it escapes comes with the next one
                    self._escape = True
                else:
                    self._in_string = False
                pos += 1
                continue
            match = _STRUCT.search(chunk, pos)
            if match is None:
                return len(chunk)
            pos = match.end()
            char = match.group()
            if char == b'"':
                self._in_string = True
            elif char in (b"{", b"["):
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 0:
                    return pos
        return pos

    def notes(self) -> list[str]:
        """Problems worth recording once the stream is over (for a parser's ``errors``)."""
        notes = []
        if self._depth:
            notes.append(f"the stream ended inside a JSON object ({len(self._buf)} bytes dropped)")
        if self.array_opened and not self.array_closed:
            notes.append("the JSON array was not closed")
        if self.garbage_bytes:
            notes.append(f"{self.garbage_bytes} byte(s) outside any JSON object skipped")
        return notes
