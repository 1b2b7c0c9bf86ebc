"""Malformed tool calls: which of the defined kinds applies first, checked once per call.

``truncated`` (the response hit its token limit while the call was produced), ``invalid_json`` (arguments
are not a JSON object), ``unknown_tool`` (name not declared in that request), ``schema_violation``
(arguments break the declared JSON Schema); ``in_text`` is set by the in-text detector. Schemas compile
once per distinct schema text (fastjsonschema, cached); a schema that does not compile is not held
against the model.

The arguments are parsed once per call (``parse_arguments``), for the verdict and for the canonical text
the recorder stores, as the standard library parses them (integers of any size exact); orjson does it
where it cannot differ: no long digit run, shallow nesting, and any text it refuses goes to the
standard library for its verdict and message.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import fastjsonschema
import orjson

from toolwatch.providers._wire import plain_numbers, strict_json
from toolwatch.schemas.vocab import TOKEN_LIMIT_REASONS, MalformedKind

Validator = Callable[[Any], Any]
_SHALLOW = 256  # brackets at most: far from the standard library's recursion limit, which orjson lacks


@dataclass(frozen=True)
class Verdict:
    kind: MalformedKind | Literal[""] = ""  # "" when the call is well formed
    detail: str = ""


OK = Verdict()


class SchemaCache:
    """Compiled validators by schema text, bounded (LRU)."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._cache: OrderedDict[str, Validator | None] = OrderedDict()
        self.compile_errors = 0

    def get(self, schema_json: str) -> Validator | None:
        if schema_json in self._cache:
            self._cache.move_to_end(schema_json)
            return self._cache[schema_json]
        validator: Validator | None
        try:
            schema = orjson.loads(schema_json)
            # a $ref outside the schema would make the recorder fetch a URL the request chose: refuse it
            validator = None if _remote_ref(schema) else fastjsonschema.compile(schema, handlers={})
        except Exception:  # noqa: BLE001 - an uncompilable schema (or not JSON) validates nothing
            self.compile_errors += 1
            validator = None
        self._cache[schema_json] = validator
        if len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return validator


def _remote_ref(node: Any) -> bool:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return True
        return any(_remote_ref(v) for v in node.values())
    if isinstance(node, list):
        return any(_remote_ref(v) for v in node)
    return False


def parse_arguments(raw: str) -> tuple[Any, str | None]:
    """``(value, None)``, or ``(None, the parser's message)`` when the text is not JSON; empty text is
    ``(None, None)``. The value is what ``strict_json`` gives (see the module docstring)."""
    if not raw.strip():
        return None, None
    if raw.count("{") + raw.count("[") <= _SHALLOW and plain_numbers(raw.encode("utf-8", "surrogatepass")):
        try:
            return orjson.loads(raw), None
        except orjson.JSONDecodeError:
            pass  # the standard library says why (or accepts what orjson refuses: a lone surrogate)
    try:
        return strict_json(raw), None  # exact big integers
    except (ValueError, RecursionError) as e:
        return None, str(e)


def classify(
    name: str,
    raw_arguments: str,
    declared: dict[str, str | None],
    *,
    finish_reason: str | None,
    is_last: bool,
    cache: SchemaCache,
) -> Verdict:
    """The first malformed kind that applies to one tool call, or OK.

    ``declared`` maps each declared tool name to its schema text (None when it has none).
    """
    if is_last and finish_reason in TOKEN_LIMIT_REASONS:
        return Verdict("truncated", f"response stopped at its token limit ({finish_reason})")
    args, error = parse_arguments(raw_arguments)
    return judge(name, args, error, declared, cache)


def judge(name: str, args: Any, error: str | None, declared: dict[str, str | None], cache: SchemaCache) -> Verdict:
    """``classify`` past the token-limit check, for arguments already parsed by ``parse_arguments``."""
    if error is not None:
        return Verdict("invalid_json", error[:300])
    if not isinstance(args, dict):
        return Verdict(
            "invalid_json", f"arguments are {type(args).__name__ if args is not None else 'empty'}, not an object"
        )
    if name not in declared:
        return Verdict("unknown_tool", f"{name!r} is not among the {len(declared)} declared tools")
    schema = declared[name]
    if schema:
        validator = cache.get(schema)
        if validator is not None:
            try:
                validator(args)
            except fastjsonschema.JsonSchemaException as e:
                return Verdict("schema_violation", str(e)[:300])
            except Exception as e:  # noqa: BLE001 - a validator bug must not stop the recorder
                return Verdict("", f"validator failed: {type(e).__name__}")
    return OK
