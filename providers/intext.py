"""Tool calls written into the reply text instead of the structured field (open models do this).

``detect(text, declared)`` finds them in these forms:

- tagged, as chat templates of open models write them; any tool name counts:
  ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (Hermes, Qwen), the same tag around
  ``name<arg_key>k</arg_key><arg_value>v</arg_value>`` (GLM-4.5) or around
  ``<function=name><parameter=k>v</parameter></function>`` (Qwen3-Coder, also without the outer tag),
  ``<function=name>{...}</function>`` (Llama 3), ``<|python_tag|>{"name": ..., "parameters": {...}}``
  (Llama 3.1), ``[TOOL_CALLS] [{...}]`` and ``[TOOL_CALLS]name[ARGS]{...}`` (Mistral),
  DeepSeek's ``<｜tool▁call▁begin｜>...<｜tool▁sep｜>...<｜tool▁call▁end｜>``, and
  ``<function_call>``/``<functioncall>`` tags around a JSON call;
- untagged, only for a tool the request declares (so JSON in ordinary prose and code never counts): a
  fenced block (```` ```json ````, ```` ```tool_call ````, ...) or the whole reply holding a JSON call object
  (or a list of them), and a ```` ```tool_code ```` block with a Python call ``name(k=v)``.

A JSON call object names the tool in ``name`` (or ``tool``, ``tool_name``, ``function``, ``action``, or a
nested ``function`` object) and carries arguments in ``arguments``, ``parameters``, ``args``, ``input``,
``tool_input`` or ``action_input``. Tagged forms found inside a fenced code block are treated as
untagged ones: a model explaining a template in a code example does not call anything.

``raw_arguments`` is the arguments object as compact JSON, or the argument text when the model wrote a
string. The detector is pure and never raises.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from toolwatch.providers._wire import as_dict, as_str, compact_json, loads

__all__ = ["InTextCall", "detect"]

_NAME_KEYS = ("name", "tool", "tool_name", "function", "action")
_ARG_KEYS = ("arguments", "parameters", "args", "input", "tool_input", "action_input")
_IDENT = re.compile(r"^[A-Za-z_][\w.\-]{0,127}$")
_FENCE = re.compile(r"```[ \t]*([\w+\-]*)[^\n]*\n(.*?)```", re.S)
_JSON_FENCES = frozenset({"", "json", "jsonc", "json5", "tool_call", "tool_calls", "tool", "function_call"})
_CODE_FENCES = frozenset({"tool_code", "python", "py"})
# Bodies never run past the next opening tag: a reply full of unclosed tags stays linear to scan.
_UNTIL_TAG = r"(?:(?!\[TOOL_CALLS\]).)*?"

_TAGGED: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("tool_call_tag", re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)),
    ("function_tag", re.compile(r"<function=([\w.\-]+)>\s*((?:(?!<function=).)*?)\s*</function>", re.S)),
    ("function_call_tag", re.compile(r"<function_?call>\s*(.*?)\s*(?:</function_?call>|$)", re.S)),
    ("python_tag", re.compile(r"<\|python_tag\|>\s*(.*?)\s*(?:<\|eom_id\|>|<\|eot_id\|>|$)", re.S)),
    (
        "mistral_args",
        re.compile(
            r"\[TOOL_CALLS\]\s*([\w.\-]+)\s*(?:\[CALL_ID\][^\[]*)?\[ARGS\]\s*(.*?)\s*(?=\[TOOL_CALLS\]|$)", re.S
        ),
    ),
    ("mistral", re.compile(r"\[TOOL_CALLS\]\s*([\[{]" + _UNTIL_TAG + r"[\]}])\s*(?=\[TOOL_CALLS\]|</s>|$)", re.S)),
    (
        "deepseek",
        re.compile(
            r"<｜tool▁call▁begin｜>([^<]*?)<｜tool▁sep｜>((?:(?!<｜tool▁call▁begin｜>).)*?)<｜tool▁call▁end｜>", re.S
        ),
    ),
)
_XML_PARAM = re.compile(r"<parameter=([\w.\-]+)>\n?((?:(?!<parameter=).)*?)\n?</parameter>", re.S)
_GLM_ARG = re.compile(r"<arg_key>([^<]*)</arg_key>\s*<arg_value>((?:(?!<arg_key>).)*?)</arg_value>", re.S)


@dataclass(frozen=True)
class InTextCall:
    name: str
    raw_arguments: str
    style: str  # which form it was written in, e.g. "tool_call_tag", "fenced_json"


def _raw(args: object) -> str:
    return args if isinstance(args, str) else compact_json(args)


def _call_objects(value: object) -> Iterator[tuple[str, object]]:
    """(name, arguments) of each call object in a JSON value (one object or a list of them)."""
    for item in value if isinstance(value, list) else [value]:
        obj = as_dict(item)
        if obj is None:
            continue
        nested = as_dict(obj.get("function"))
        if nested is not None:
            obj = nested
        name = next((n for k in _NAME_KEYS if (n := as_str(obj.get(k))) is not None), None)
        key = next((k for k in _ARG_KEYS if k in obj), None)
        if name is None or key is None or not _IDENT.match(name):
            continue
        args = obj[key]
        if isinstance(args, dict | str):
            yield name, args


def _json_calls(text: str) -> list[tuple[str, object]]:
    value, problem = loads(text.strip())
    return [] if problem is not None else list(_call_objects(value))


def _value(text: str) -> object:
    """An XML-style argument value: JSON when it parses, else the text itself."""
    value, problem = loads(text.strip())
    return text.strip() if problem is not None else value


def _xml_function(body: str) -> list[tuple[str, object]]:
    """``<function=name><parameter=k>v</parameter>...</function>`` (Qwen3-Coder)."""
    match = re.match(r"\s*<function=([\w.\-]+)>(.*?)(?:</function>|$)", body, re.S)
    if match is None:
        return []
    return [(match.group(1), {k: _value(v) for k, v in _XML_PARAM.findall(match.group(2))})]


def _tool_call_body(body: str) -> list[tuple[str, object]]:
    calls = _json_calls(body) or _xml_function(body)
    if calls or "<arg_key>" not in body:
        return calls
    name = body.split("<arg_key>", 1)[0].strip()  # GLM-4.5: name, then key/value pairs
    if not _IDENT.match(name):
        return []
    return [(name, {k.strip(): _value(v) for k, v in _GLM_ARG.findall(body)})]


def _tagged(style: str, match: re.Match[str]) -> list[tuple[str, object]]:
    if style == "tool_call_tag":
        return _tool_call_body(match.group(1))
    if style == "function_tag":
        body = match.group(2)
        if "<parameter=" in body:
            return [(match.group(1), {k: _value(v) for k, v in _XML_PARAM.findall(body)})]
        value, problem = loads(body) if body else ({}, None)
        return [(match.group(1), value)] if problem is None and isinstance(value, dict) else []
    if style == "mistral_args":
        value, problem = loads(match.group(2))
        return [(match.group(1), value)] if problem is None and isinstance(value, dict) else []
    if style == "deepseek":
        head, body = match.group(1).strip(), match.group(2).strip()
        if head == "function":  # V3: "function<sep>name\n```json\n{...}\n```"
            name, _, rest = body.partition("\n")
            fenced = _FENCE.search(rest)
            head, body = name.strip(), fenced.group(2) if fenced else rest
        value, problem = loads(body.strip())
        return [(head, value)] if problem is None and isinstance(value, dict) and _IDENT.match(head) else []
    if style == "python_tag":
        return [c for part in match.group(1).split(";") for c in _json_calls(part)]
    return _json_calls(match.group(1))


def _python_calls(code: str) -> list[tuple[str, object]]:
    """``name(k=v, ...)`` statements (Gemma's ``tool_code``), ``print(...)`` around them allowed."""
    try:
        tree = ast.parse(code.strip(), mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    calls: list[tuple[str, object]] = []
    for stmt in tree.body:
        node = stmt.value if isinstance(stmt, ast.Expr) else None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            node = node.args[0] if len(node.args) == 1 else None
        if not isinstance(node, ast.Call) or node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if name is None:
            continue
        args: dict[str, Any] = {}
        for kw in node.keywords:
            try:
                if kw.arg is None:
                    raise ValueError
                args[kw.arg] = ast.literal_eval(kw.value)
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                args = {}
                break
        else:
            calls.append((name, args))
    return calls


def detect(text: str, declared: Collection[str] = ()) -> list[InTextCall]:
    """The tool calls written in ``text``, in order of appearance (see the module docstring)."""
    if not text or len(text) > 1_000_000:
        return []
    fences = [(m.start(), m.end(), m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]

    def in_fence(pos: int) -> bool:
        return any(start <= pos < end for start, end, _, _ in fences)

    found: list[tuple[int, InTextCall]] = []
    taken: list[tuple[int, int]] = []
    for style, pattern in _TAGGED:
        for match in pattern.finditer(text):
            if any(start <= match.start() < end for start, end in taken):
                continue
            calls = _tagged(style, match)
            fenced = in_fence(match.start())
            calls = [(n, a) for n, a in calls if isinstance(a, dict | str) and (not fenced or n in declared)]
            if calls:
                taken.append((match.start(), match.end()))
                found += [(match.start(), InTextCall(n, _raw(a), style)) for n, a in calls]
    if not declared:
        return [call for _, call in sorted(found, key=lambda f: f[0])]
    for start, _end, lang, body in fences:
        if any(s <= start < e or start <= s < _end for s, e in taken):
            continue
        if lang in _JSON_FENCES:
            calls, style = _json_calls(body), "fenced_json"
        elif lang in _CODE_FENCES:
            calls, style = _python_calls(body), "tool_code"
        else:
            continue
        found += [(start, InTextCall(n, _raw(a), style)) for n, a in calls if n in declared]
    stripped = text.strip()
    if not found and stripped[:1] in ("{", "["):
        found += [(0, InTextCall(n, _raw(a), "bare_json")) for n, a in _json_calls(stripped) if n in declared]
    return [call for _, call in sorted(found, key=lambda f: f[0])]
