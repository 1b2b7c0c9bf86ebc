"""A strict reader for the YAML subset that the files in ``deploy/`` are written in (PyYAML is not a
dependency of the project): block mappings and sequences by indentation, plain, single- and double-quoted
scalars, flow sequences of scalars (``[a, "b"]``) and flow mappings of scalars (``{a: b}``), literal and
folded block scalars (``|``, ``|-``, ``>``, ``>-``), comments. Scalars stay strings. Anything else
(anchors, tags, multi-line flow collections, tabs, documents) is an error rather than a guess, so a file
that this reads is read the way YAML reads it; promtool checks the same files with a real YAML parser.
"""

from __future__ import annotations

import re
from typing import Any

KEY = re.compile(r"""^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s"'#\[\]{}][^:#]*?)\s*:(?:\s+|$)(.*)$""")
UNSUPPORTED = ("&", "*", "!", "%", "@", "`")


class YamlSubsetError(ValueError):
    pass


def load(text: str) -> Any:
    lines = text.split("\n")
    for n, line in enumerate(lines, 1):
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise YamlSubsetError(f"line {n}: a tab in the indentation")
        if line.startswith(("---", "...")):
            raise YamlSubsetError(f"line {n}: documents are not supported")
    reader = _Reader(lines)
    i = reader.skip(0)
    if i >= len(lines):
        return None
    value, i = reader.block(i, _indent(lines[i]))
    i = reader.skip(i)
    if i < len(lines):
        raise YamlSubsetError(f"line {i + 1}: unexpected indentation: {lines[i]!r}")
    return value


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _strip_comment(s: str) -> str:
    quote = ""
    for k, ch in enumerate(s):
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"':
                continue
        elif ch in "\"'" and (k == 0 or s[k - 1] in " [{,:"):
            quote = ch
        elif ch == "#" and (k == 0 or s[k - 1] == " "):
            return s[:k].rstrip()
    return s.rstrip()


def scalar(s: str) -> Any:
    s = s.strip()
    if not s:
        return None
    if s.startswith('"'):
        if not re.fullmatch(r'"(?:[^"\\]|\\.)*"', s):
            raise YamlSubsetError(f"bad double-quoted scalar: {s}")
        escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "/": "/"}

        def unescape(m: re.Match[str]) -> str:
            if m.group(1) not in escapes:
                raise YamlSubsetError(f"unsupported escape in {s}")
            return escapes[m.group(1)]

        return re.sub(r"\\(.)", unescape, s[1:-1])
    if s.startswith("'"):
        if not re.fullmatch(r"'(?:[^']|'')*'", s):
            raise YamlSubsetError(f"bad single-quoted scalar: {s}")
        return s[1:-1].replace("''", "'")
    if s.startswith("["):
        if not s.endswith("]"):
            raise YamlSubsetError(f"multi-line flow sequences are not supported: {s}")
        inner = s[1:-1].strip()
        return [scalar(part) for part in _split_flow(inner)] if inner else []
    if s.startswith("{"):
        if not s.endswith("}"):
            raise YamlSubsetError(f"multi-line flow mappings are not supported: {s}")
        out: dict[str, Any] = {}
        for part in _split_flow(s[1:-1].strip()):
            m = KEY.match(part.strip())
            if not m:
                raise YamlSubsetError(f"bad flow mapping entry: {part}")
            out[scalar(m.group(1))] = scalar(m.group(2))
        return out
    if s.startswith(UNSUPPORTED) or s.startswith(("|", ">")):
        raise YamlSubsetError(f"unsupported scalar: {s}")
    if ": " in s or s.endswith(":"):
        raise YamlSubsetError(f"a plain scalar with ': ' in it: {s}")
    return s


def _split_flow(inner: str) -> list[str]:
    parts, current, quote = [], "", ""
    for ch in inner:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[]{}":
            raise YamlSubsetError(f"nested flow collections are not supported: {inner}")
        elif ch == ",":
            parts.append(current)
            current = ""
            continue
        current += ch
    parts.append(current)
    return [p.strip() for p in parts]


class _Reader:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def skip(self, i: int) -> int:
        """The next line with content (not blank, not only a comment)."""
        while i < len(self.lines) and not _strip_comment(self.lines[i]).strip():
            i += 1
        return i

    def block(self, i: int, indent: int) -> tuple[Any, int]:
        content = self.lines[i][indent:]
        if content == "-" or content.startswith("- "):
            return self.sequence(i, indent)
        return self.mapping(i, indent)

    def sequence(self, i: int, indent: int) -> tuple[list[Any], int]:
        items: list[Any] = []
        while i < len(self.lines) and _indent(self.lines[i]) == indent:
            line = _strip_comment(self.lines[i])
            rest = line[indent:]
            if not (rest == "-" or rest.startswith("- ")):
                break
            after = rest[1:].lstrip(" ")
            if not after:
                j = self.skip(i + 1)
                if j >= len(self.lines) or _indent(self.lines[j]) <= indent:
                    items.append(None)
                    i = j
                else:
                    value, i = self.block(j, _indent(self.lines[j]))
                    items.append(value)
            elif KEY.match(after) and not after.startswith(("[", "{", '"', "'")) or _quoted_key(after):
                # "- key: value": a mapping whose first line starts at the item's content column
                column = indent + (len(rest) - len(after))
                self.lines[i] = " " * column + self.lines[i][column:]
                value, i = self.mapping(i, column)
                items.append(value)
            else:
                items.append(scalar(after))
                i = self.skip(i + 1)
            i = self.skip(i)
        return items, i

    def mapping(self, i: int, indent: int) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        while i < len(self.lines) and _indent(self.lines[i]) == indent:
            raw = self.lines[i]
            line = _strip_comment(raw)
            rest = line[indent:]
            if rest == "-" or rest.startswith("- "):
                break
            m = KEY.match(rest)
            if not m:
                raise YamlSubsetError(f"line {i + 1}: expected 'key: value': {raw!r}")
            key = scalar(m.group(1))
            if key in out:
                raise YamlSubsetError(f"line {i + 1}: duplicate key {key!r}")
            value = m.group(2).strip()
            if value.startswith(("|", ">")):
                out[key], i = self.block_scalar(i, indent, value)
            elif value:
                out[key] = scalar(value)
                i = self.skip(i + 1)
            else:
                j = self.skip(i + 1)
                if j < len(self.lines) and _indent(self.lines[j]) > indent:
                    out[key], i = self.block(j, _indent(self.lines[j]))
                elif (
                    j < len(self.lines) and _indent(self.lines[j]) == indent and self.lines[j][indent:].startswith("-")
                ):
                    out[key], i = self.sequence(j, indent)  # "key:\n- item" at the key's own indentation
                else:
                    out[key], i = None, j
            i = self.skip(i)
        return out, i

    def block_scalar(self, i: int, indent: int, header: str) -> tuple[str, int]:
        if header not in ("|", "|-", ">", ">-"):
            raise YamlSubsetError(f"line {i + 1}: unsupported block scalar header {header!r}")
        body: list[str] = []
        j = i + 1
        block_indent = None
        while j < len(self.lines):
            line = self.lines[j]
            if line.strip():
                if _indent(line) <= indent:
                    break
                if block_indent is None:
                    block_indent = _indent(line)
                elif _indent(line) < block_indent:
                    raise YamlSubsetError(f"line {j + 1}: less indented than its block scalar")
                body.append(line[block_indent:])
            else:
                body.append("")
            j += 1
        while body and not body[-1]:
            body.pop()
        if header.startswith(">"):
            text = _fold(body)
        else:
            text = "\n".join(body)
        if not header.endswith("-") and body:
            text += "\n"
        return text, j

    # (a folded scalar's more-indented lines are kept as they are, as YAML does)


def _fold(body: list[str]) -> str:
    out = ""
    for k, line in enumerate(body):
        if k == 0:
            out = line
        elif not line:
            out += "\n"
        elif line.startswith(" ") or body[k - 1].startswith(" "):
            out += "\n" + line
        elif body[k - 1] == "":
            out += line
        else:
            out += " " + line
    return out


def _quoted_key(s: str) -> bool:
    return bool(re.match(r"""^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*')\s*:(\s|$)""", s))
