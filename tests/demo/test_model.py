"""The scripted models and their tools, without any network: what they produce is what toolwatch's own
validator and in-text detector call it, at the rates the profiles promise, reproducibly."""

from __future__ import annotations

import json
from collections import Counter
from random import Random

import pytest

from toolwatch.demo.conversation import Call, Result, Turn, View
from toolwatch.demo.model import ScriptedModel
from toolwatch.demo.profiles import KINDS, PROFILES, Profile, profile_for
from toolwatch.demo.script import Reply
from toolwatch.demo.tools import CATALOG, IN_TEXT_NOTE, STEP_LIMIT_NOTE, check, is_failure
from toolwatch.providers.intext import detect
from toolwatch.recorder.validate import SchemaCache, classify

TOOLS = ("lookup_order", "search_docs", "refund_order", "send_email")
FINISH = {"length", "max_tokens", "MAX_TOKENS"}


def view(api: str, model: str, task: str, turns: tuple[Turn, ...] = (), stream: bool = False) -> View:
    return View(api, model, stream, "You are a support assistant.", task, TOOLS, turns)  # type: ignore[arg-type]


def kinds_of(reply: Reply, cache: SchemaCache) -> list[str]:
    """toolwatch's verdict on each tool call of a reply ("" for a good one)."""
    declared = {n: json.dumps(CATALOG[n].schema) for n in TOOLS}
    if not reply.tool_calls:
        return ["in_text" for _ in detect(reply.text, declared)]
    last = len(reply.tool_calls) - 1
    return [
        classify(c.name, c.arguments, declared, finish_reason=reply.finish_reason, is_last=i == last, cache=cache).kind
        for i, c in enumerate(reply.tool_calls)
    ]


def first_turns(profile: Profile, api: str, n: int, stream: bool = False) -> Counter[str]:
    model, cache, counts = ScriptedModel(seed=7, salt="t"), SchemaCache(), Counter[str]()
    for i in range(n):
        task = f"[#{i}] Order ORD-{10000 + i} arrived damaged."
        reply = model.answer(profile, view(api, profile.model, task, (), stream))
        counts.update(kinds_of(reply, cache))
    return counts


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
def test_first_turn_malformed_kinds_come_at_the_profile_rates(profile: Profile) -> None:
    api = {"claude-sonnet-4-5": "anthropic", "gemini-2.5-flash": "gemini"}.get(profile.model, "openai")
    counts = first_turns(profile, api, 3000, stream=api == "anthropic")
    calls = sum(counts.values())
    assert calls > 2500
    for kind in KINDS:
        rate = profile.malformed.get(kind, 0.0)
        if kind == "invalid_json" and api == "gemini":
            rate = 0.0  # Gemini's args are objects on the wire
        assert abs(counts[kind] / calls - rate) <= 0.01 + 0.3 * rate, (kind, counts)
    assert set(counts) <= {"", *profile.malformed}


def test_reliability_ranks_and_lookup() -> None:
    rates = {m: p.malformed_rate for m, p in PROFILES.items()}
    assert rates["gpt-4o"] < rates["gemini-2.5-flash"] < rates["claude-sonnet-4-5"] < rates["glm-4.5"]
    assert set(PROFILES["glm-4.5"].malformed) == set(KINDS)
    assert profile_for("models/gemini-2.5-flash") is PROFILES["gemini-2.5-flash"]
    assert profile_for("glm-4.5-air") is PROFILES["glm-4.5"]
    assert profile_for("llama-3.3").model == "llama-3.3"
    with pytest.raises(ValueError, match="unknown malformed kinds"):
        Profile("x", malformed={"sloppy": 0.1})


def test_object_only_wires_never_get_broken_json() -> None:
    """Non-streamed Anthropic and Gemini carry arguments as objects: broken text cannot be rendered there."""
    glm = PROFILES["glm-4.5"]
    for api in ("anthropic", "gemini"):
        counts = first_turns(glm, api, 800)
        assert counts["invalid_json"] == 0 and counts["truncated"] > 0 and counts["schema_violation"] > 0


def test_same_conversation_same_reply_and_ids_do_not_matter() -> None:
    glm = PROFILES["glm-4.5"]
    a, b = ScriptedModel(seed=7, salt="aa"), ScriptedModel(seed=7, salt="bb")
    for i in range(50):
        task = f"[#{i}] Order ORD-12345 is late."
        replies = []
        for model, call_id in ((a, f"call_a{i}"), (b, f"call_b{i}")):
            turn = Turn("", [Call("lookup_order", '{"order_id": "ORD-12345"}', id=call_id)])
            turn.results.append(Result("lookup_order", '{"status": "delivered"}', failed=False))
            reply = model.answer(glm, view("openai", "glm-4.5", task, (turn,)))
            replies.append((reply.text, [(c.name, c.arguments) for c in reply.tool_calls], reply.finish_reason))
        assert replies[0] == replies[1]


def _failed_turn(call: Call, content: str = "Error: file not found: src/utils/helpers.py") -> Turn:
    turn = Turn("", [call])
    turn.results.append(Result(call.name, content, failed=True))
    return turn


def test_after_a_failure_models_recover_repeat_or_give_up() -> None:
    call = Call("lookup_order", '{"order_id": "ORD-12000"}')
    reactions: dict[str, Counter[str]] = {}
    for profile in PROFILES.values():
        model, seen = ScriptedModel(seed=7, salt=""), Counter[str]()
        for i in range(400):
            reply = model.answer(profile, view("openai", profile.model, f"[#{i}] ORD-12345", (_failed_turn(call),)))
            if not reply.tool_calls:
                seen["give_up" if "sorry" in reply.text else "other"] += 1
            elif (reply.tool_calls[0].name, reply.tool_calls[0].arguments) == (call.name, call.arguments):
                seen["repeat"] += 1
            else:
                seen["new call"] += 1
        reactions[profile.model] = seen
    assert reactions["gpt-4o"]["new call"] > 330 and reactions["glm-4.5"]["repeat"] > 70
    assert reactions["glm-4.5"]["give_up"] > reactions["gpt-4o"]["give_up"] > 0
    # a model that repeated once is stuck: it repeats far more often
    stuck = Counter[str]()
    glm = PROFILES["glm-4.5"]
    for i in range(300):
        turns = (_failed_turn(call), _failed_turn(call))
        reply = ScriptedModel(seed=7, salt="").answer(glm, view("openai", "glm-4.5", f"[#{i}] ORD-12345", turns))
        stuck[bool(reply.tool_calls) and reply.tool_calls[0].arguments == call.arguments] += 1
    assert stuck[True] / 300 > glm.stuck - 0.1


def test_notes_from_the_agent_are_obeyed() -> None:
    glm, model = PROFILES["glm-4.5"], ScriptedModel(seed=7, salt="")
    for i in range(100):
        limit = Turn("", [Call("search_docs", '{"query": "refunds"}')], note=STEP_LIMIT_NOTE)
        limit.results.append(Result("search_docs", '{"results": []}', failed=False))
        reply = model.answer(glm, view("openai", "glm-4.5", f"[#{i}] refunds", (limit,)))
        assert not reply.tool_calls and reply.text
        in_text = Turn('<tool_call>{"name": "lookup_order", "arguments": {}}</tool_call>', [], note=IN_TEXT_NOTE)
        assert in_text.failed


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_each_tool_good_bad_and_violating_arguments(name: str) -> None:
    """Good arguments pass and (mostly) work; bad ones pass the schema but fail; violating ones break the
    schema by the agent's check and by toolwatch's validator alike."""
    tool, cache = CATALOG[name], SchemaCache()
    declared = {name: json.dumps(tool.schema)}
    task = "Order ORD-48213 from Lisbon: bug in src/cart/discount.py, count orders"
    for i in range(40):
        rng = Random(i)
        good, bad, violating = tool.good(task, rng), tool.bad(task, rng), tool.violating(task, rng)
        for args, verdict in ((good, ""), (bad, ""), (violating, "schema_violation")):
            raw = json.dumps(args)
            assert classify(name, raw, declared, finish_reason=None, is_last=True, cache=cache).kind == verdict
            assert (check(tool.schema, args) is None) == (verdict == "")
        assert is_failure(tool.run(bad, rng)), (name, bad)
    outcomes = Counter(is_failure(tool.run(tool.good(task, Random(i)), Random(i))) for i in range(200))
    assert outcomes[False] > 160, outcomes


def test_failure_forms_match_what_tools_write() -> None:
    assert is_failure('{"error": "rate limited"}') and not is_failure('{"error": null, "rows": []}')
    assert is_failure("Traceback (most recent call last):\n  ...") and is_failure("ERROR: file or directory not found")
    assert is_failure("1 failed, 13 passed in 1.07s\nexit code 1") and not is_failure("14 passed, exit code 0")
    assert is_failure("timed out after 30 s") and not is_failure("All good: no errors found")
