"""The demo's fake tools, known to both sides: the agents declare and run them, the scripted models call them.

Each `Tool` has a JSON Schema and three ways to fill it, chosen by the scripted model:
`good` arguments (the tool succeeds, unless the environment fails it: a rate limit, a flaky test),
`bad` arguments (schema-valid, but the tool fails: a hallucinated path, an order that does not exist) and
`violating` arguments (they break the schema). `run` is the tool itself, as the agent executes it; its
failures are written the way real tools fail, so that toolwatch's result rules catch them:
``Error: ...``, ``Traceback (most recent call last)``, ``{"error": ...}``, ``exit code 1``, ``timed out``.

Arguments are drawn from the task text where it names them (an order id, a file path, a city), so a
call looks like an answer to its conversation. Everything random takes a `random.Random` from the caller.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

Args = dict[str, Any]

# The notes an agent appends to a user turn; the scripted models read them.
STEP_LIMIT_NOTE = "Step limit reached. Reply with your final answer now, without calling any tool."
IN_TEXT_NOTE = (
    "Your reply contained a tool call written as text. I can only run tools called through the tools API; "
    "please call the tool properly."
)

CITIES = ("Zürich", "Lisbon", "Osaka", "Montréal", "Nairobi", "Reykjavík", "Seattle", "Kraków")
_ORDER = re.compile(r"ORD-\d{5}")
_PATH = re.compile(r"\b(?:src|lib|app)/[\w/]+\.py\b")
_TABLE = re.compile(r"\b(orders|signups|payments|tickets)\b")


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    schema: dict[str, Any]
    good: Callable[[str, Random], Args]
    bad: Callable[[str, Random], Args]
    violating: Callable[[str, Random], Args]
    run: Callable[[Args, Random], str]
    alias: str  # the name a confused model calls it by (an unknown tool)


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def _order(task: str, rng: Random) -> str:
    found = _ORDER.search(task)
    return found.group(0) if found else f"ORD-{rng.randint(10000, 99999)}"


def _path(task: str, rng: Random) -> str:
    found = _PATH.search(task)
    return found.group(0) if found else rng.choice(("src/app.py", "src/billing/invoice.py", "src/api/routes.py"))


def _city(task: str, rng: Random) -> str:
    return next((c for c in CITIES if c in task), rng.choice(CITIES))


def _topic(task: str) -> str:
    words = re.sub(r"[^\w\s-]", " ", task.split(":", 1)[-1]).split()
    return " ".join(words[:6]) or "getting started"


def _rate_limited(rng: Random, p: float) -> bool:
    return rng.random() < p


# Tools: lookup_order, refund_order, search_docs, send_email


def _run_lookup(args: Args, rng: Random) -> str:
    order = str(args.get("order_id"))
    if _rate_limited(rng, 0.04):
        return json.dumps({"error": "rate limited", "retry_after_s": 2})
    if order.endswith("000"):
        return json.dumps({"error": "order not found", "order_id": order})
    items = rng.choice((["USB-C dock"], ["Desk lamp", "LED bulb x2"], ["Trail shoes, size 43"]))
    total = round(rng.uniform(19, 240), 2)
    return json.dumps({"order_id": order, "status": "delivered", "items": items, "total": total, "currency": "EUR"})


def _run_refund(args: Args, rng: Random) -> str:
    if float(args.get("amount", 0)) > 500:
        return f"Error: refund of {args['amount']} exceeds the order total"
    return json.dumps({"refund_id": f"RF-{rng.randint(100000, 999999)}", "state": "approved"})


def _run_search(args: Args, rng: Random) -> str:
    query = str(args.get("query", ""))
    if query.count('"') % 2:
        return json.dumps({"error": "invalid query syntax: unbalanced quote"})
    if _rate_limited(rng, 0.05):
        return json.dumps({"error": "rate limited"})
    count = min(int(args.get("limit", 3)), 3)
    hits = [
        {"title": f"{query.title()} ({n})", "url": f"https://docs.example.com/kb/{rng.randint(100, 999)}"}
        for n in range(1, count + 1)
    ]
    return json.dumps({"results": hits, "total": len(hits)})


def _run_email(args: Args, rng: Random) -> str:
    to = str(args.get("to", ""))
    if "@" not in to:
        return f"Error: invalid recipient address {to!r}"
    return json.dumps({"message_id": f"<{rng.randint(10**8, 10**9)}@mail.example.com>", "queued": True})


# Tools: read_file, edit_file, run_tests, run_python, query_db, get_weather


def _run_read(args: Args, rng: Random) -> str:
    path = str(args.get("path", ""))
    if "helpers" in path or "utils" in path:
        return f"Error: file not found: {path}"
    body = [f"# {path}", "def handle(request):", "    total = sum(item.price for item in request.items)"]
    return "\n".join(body + ["    return total * (1 - request.discount)", ""])


def _run_edit(args: Args, rng: Random) -> str:
    if "def main" in str(args.get("old", "")):
        return f"Error: old text not found in {args.get('path')}"
    return f"Applied 1 edit to {args.get('path')}"


def _run_tests(args: Args, rng: Random) -> str:
    path = str(args.get("path", "tests"))
    if "helpers" in path:
        return f"ERROR: file or directory not found: {path}"
    if rng.random() < 0.12:
        return (
            f"FAILED {path}::test_discount - AssertionError: assert 90.0 == 81.0\n"
            "1 failed, 13 passed in 1.07s\nexit code 1"
        )
    return f"collected 14 items\n\n{path} ..............                [100%]\n\n14 passed in 0.91s"


def _run_python(args: Args, rng: Random) -> str:
    code = str(args.get("code", ""))
    if "/ 0" in code or "[999]" in code:
        error = "ZeroDivisionError: division by zero" if "/ 0" in code else "IndexError: list index out of range"
        return f'Traceback (most recent call last):\n  File "<stdin>", line 1, in <module>\n{error}'
    return str(rng.randint(3, 9999))


def _run_query(args: Args, rng: Random) -> str:
    sql = str(args.get("sql", ""))
    if "revenue_usd" in sql:
        return 'Error: column "revenue_usd" does not exist'
    if _rate_limited(rng, 0.03):
        return "timed out after 30 s waiting for the warehouse"
    rows = [[f"2025-0{m}", rng.randint(100, 5000)] for m in range(1, 4)]
    return json.dumps({"columns": ["month", "count"], "rows": rows})


def _run_weather(args: Args, rng: Random) -> str:
    city = str(args.get("city", ""))
    if city not in CITIES:
        return json.dumps({"error": f"unknown city: {city}"})
    if _rate_limited(rng, 0.03):
        return json.dumps({"error": "rate limited", "retry_after_s": 1})
    days = [{"day": d, "high_c": rng.randint(-3, 31), "rain_mm": rng.randint(0, 12)} for d in range(args["days"])]
    return json.dumps({"city": city, "forecast": days})


def _refund_args(task: str, rng: Random) -> Args:
    reason = rng.choice(("damaged", "late", "wrong_item"))
    return {"order_id": _order(task, rng), "amount": round(rng.uniform(10, 120), 2), "reason": reason}


def _test_path(task: str, rng: Random) -> str:
    stem = _path(task, rng).rsplit("/", 1)[-1]
    return f"tests/test_{stem}"


CATALOG: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool(
            "lookup_order",
            "Look up an order by its id.",
            _obj(["order_id"], order_id={"type": "string", "pattern": "^ORD-[0-9]{5}$"}),
            lambda task, rng: {"order_id": _order(task, rng)},
            lambda task, rng: {"order_id": _order(task, rng)[:6] + "000"},
            lambda task, rng: {"order_id": int(_order(task, rng)[4:])},
            _run_lookup,
            "get_order",
        ),
        Tool(
            "refund_order",
            "Refund part or all of an order.",
            _obj(
                ["order_id", "amount", "reason"],
                order_id={"type": "string", "pattern": "^ORD-[0-9]{5}$"},
                amount={"type": "number", "minimum": 0},
                reason={"type": "string", "enum": ["damaged", "late", "wrong_item", "other"]},
            ),
            _refund_args,
            lambda task, rng: {"order_id": _order(task, rng), "amount": 1299.0, "reason": "damaged"},
            lambda task, rng: {"order_id": _order(task, rng), "amount": "full", "reason": "broken"},
            _run_refund,
            "issue_refund",
        ),
        Tool(
            "search_docs",
            "Search the knowledge base.",
            _obj(
                ["query"],
                query={"type": "string", "minLength": 2},
                limit={"type": "integer", "minimum": 1, "maximum": 20},
            ),
            lambda task, rng: {"query": _topic(task), "limit": rng.choice((3, 5))},
            lambda task, rng: {"query": f'"{_topic(task)}', "limit": 5},
            lambda task, rng: {"q": _topic(task), "limit": "five"},
            _run_search,
            "web_search",
        ),
        Tool(
            "send_email",
            "Send an email.",
            _obj(
                ["to", "subject", "body"],
                to={"type": "string"},
                subject={"type": "string", "maxLength": 120},
                body={"type": "string"},
            ),
            lambda task, rng: {"to": "customer@example.com", "subject": "About your request", "body": "Hello! ..."},
            lambda task, rng: {"to": "the customer", "subject": "About your request", "body": "Hello! ..."},
            lambda task, rng: {"recipient": "customer@example.com", "body": "Hello! ..."},
            _run_email,
            "email.send",
        ),
        Tool(
            "read_file",
            "Read a file of the repository.",
            _obj(["path"], path={"type": "string"}),
            lambda task, rng: {"path": _path(task, rng)},
            lambda task, rng: {"path": rng.choice(("src/utils/helpers.py", "lib/helpers/strings.py"))},
            lambda task, rng: {"file": _path(task, rng)},
            _run_read,
            "open_file",
        ),
        Tool(
            "edit_file",
            "Replace text in a file.",
            _obj(["path", "old", "new"], path={"type": "string"}, old={"type": "string"}, new={"type": "string"}),
            lambda task, rng: {"path": _path(task, rng), "old": "return total", "new": "return round(total, 2)"},
            lambda task, rng: {"path": _path(task, rng), "old": "def main():", "new": "def main() -> None:"},
            lambda task, rng: {"path": _path(task, rng), "edits": [{"line": 3, "text": "return total"}]},
            _run_edit,
            "apply_patch",
        ),
        Tool(
            "run_tests",
            "Run the test suite, or part of it.",
            _obj(["path"], path={"type": "string"}, verbose={"type": "boolean"}),
            lambda task, rng: {"path": _test_path(task, rng), "verbose": False},
            lambda task, rng: {"path": "tests/test_helpers.py", "verbose": False},
            lambda task, rng: {"path": _test_path(task, rng), "verbose": "yes"},
            _run_tests,
            "pytest",
        ),
        Tool(
            "run_python",
            "Run a short Python snippet and return what it prints.",
            _obj(["code"], code={"type": "string"}, timeout_s={"type": "integer", "minimum": 1, "maximum": 60}),
            lambda task, rng: {"code": f"print(sum(range({rng.randint(10, 99)})))", "timeout_s": 10},
            lambda task, rng: {"code": rng.choice(("print(total / 0)", "print(rows[999])")), "timeout_s": 10},
            lambda task, rng: {"code": "print(1)", "timeout_s": 0},
            _run_python,
            "python",
        ),
        Tool(
            "query_db",
            "Run a read-only SQL query on the analytics warehouse.",
            _obj(["sql"], sql={"type": "string"}, max_rows={"type": "integer", "minimum": 1}),
            lambda task, rng: {"sql": _sql(task, "count(*)"), "max_rows": 100},
            lambda task, rng: {"sql": _sql(task, "sum(revenue_usd)"), "max_rows": 100},
            lambda task, rng: {"query": _sql(task, "count(*)"), "max_rows": -1},
            _run_query,
            "sql_query",
        ),
        Tool(
            "get_weather",
            "Weather forecast for a city.",
            _obj(
                ["city", "days"],
                city={"type": "string"},
                days={"type": "integer", "minimum": 1, "maximum": 7},
                units={"type": "string", "enum": ["metric", "imperial"]},
            ),
            lambda task, rng: {"city": _city(task, rng), "days": rng.randint(1, 5), "units": "metric"},
            lambda task, rng: {"city": rng.choice(("Atlantis", "Springfield")), "days": 3, "units": "metric"},
            lambda task, rng: {"city": _city(task, rng), "days": "three", "units": "celsius"},
            _run_weather,
            "weather.get",
        ),
    )
}


def _sql(task: str, measure: str) -> str:
    found = _TABLE.search(task)
    table = found.group(1) if found else "orders"
    return f"SELECT toStartOfMonth(created_at) AS month, {measure} FROM {table} GROUP BY month ORDER BY month"


def declaration(name: str) -> tuple[str, str, dict[str, Any]]:
    """(name, description, JSON Schema) of a catalog tool."""
    tool = CATALOG[name]
    return tool.name, tool.description, tool.schema


def is_failure(content: str) -> bool:
    """Whether a tool result reads as a failure: the forms `Tool.run` fails with."""
    head = content.lstrip()[:2048]
    if head.startswith("{"):
        try:
            value = json.loads(content)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value.get("error") not in (None, False, "")
    return bool(re.match(r"(?i)(error\b|traceback|timed out|permission denied)", head)) or bool(
        re.search(r"(?i)\bexit code [1-9]", head)
    )


def check(schema: dict[str, Any], args: Any) -> str | None:
    """The agent's own argument check, for the schema features the catalog uses; None when they pass."""
    if not isinstance(args, dict):
        return "arguments must be a JSON object"
    props: dict[str, Any] = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in args:
            return f"{key!r} is a required property"
    for key, value in args.items():
        spec = props.get(key)
        if spec is None:
            if schema.get("additionalProperties") is False:
                return f"unexpected property {key!r}"
            continue
        problem = _check_value(spec, value)
        if problem:
            return f"{key!r}: {problem}"
    return None


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def _check_value(spec: dict[str, Any], value: Any) -> str | None:
    kind = spec.get("type")
    if kind in _TYPES and not _TYPES[kind](value):
        return f"{value!r} is not of type {kind!r}"
    if "enum" in spec and value not in spec["enum"]:
        return f"{value!r} is not one of {spec['enum']}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in spec and value < spec["minimum"]:
            return f"{value} is less than the minimum of {spec['minimum']}"
        if "maximum" in spec and value > spec["maximum"]:
            return f"{value} is greater than the maximum of {spec['maximum']}"
    if isinstance(value, str):
        if len(value) < spec.get("minLength", 0) or len(value) > spec.get("maxLength", len(value)):
            return f"{value!r} has the wrong length"
        if "pattern" in spec and not re.search(spec["pattern"], value):
            return f"{value!r} does not match {spec['pattern']!r}"
    return None
