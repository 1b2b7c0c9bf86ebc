"""The scripted models: a `Reply` for a conversation, chosen by the model's reliability profile.

Each conversation gets a plan from its opening (the first one to four of the declared tools, in the order
they are declared, or none for a question answered at once). A turn calls the next planned tool that has no
successful result yet, sometimes two at once; a call is malformed, made with bad arguments, or good, as the
profile's rates say. After a failed step (an error result, or the agent's complaint about a call written as
text) the profile picks a reaction: recover, repeat the identical call, flail (another malformed call) or
give up. The agent's step-limit note always gets a final answer.

Every decision draws from a `random.Random` seeded with the demo seed, the model and the conversation's
text without ids (`View.fingerprint`), so the same workload gets the same replies, whatever the timing.
"""

from __future__ import annotations

import itertools
import json
from random import Random
from typing import Any

from toolwatch.demo.conversation import Call, Turn, View
from toolwatch.demo.profiles import Profile
from toolwatch.demo.script import Reply, ToolCallSpec
from toolwatch.demo.tools import CATALOG, STEP_LIMIT_NOTE, Args, Tool

TOKEN_LIMIT = {"openai": "length", "anthropic": "max_tokens", "gemini": "MAX_TOKENS"}
_ID_PREFIX = {"openai": "call_", "anthropic": "toolu_01"}
_PREAMBLES = ("Let me check.", "I'll look that up first.", "Sure, one moment.", "Let me gather the facts.")


class ScriptedModel:
    """Answers for every profile; `salt` keeps tool-call ids unique across demo runs sharing one store."""

    def __init__(self, seed: int, salt: str) -> None:
        self.seed = seed
        self.salt = salt
        self._ids = itertools.count(1)

    def answer(self, profile: Profile, view: View) -> Reply:
        rng = Random(f"{self.seed}|{profile.model}|{view.fingerprint()}")
        last = view.last
        if last is not None and STEP_LIMIT_NOTE in last.note:
            return self._final(view, gave_up=_unresolved(view))
        if last is not None and last.failed:
            return self._after_failure(profile, view, rng)
        pending = [name for name in self.plan(profile, view) if name not in _done(view)]
        if not pending:
            return self._final(view, gave_up=False)
        names = pending[:2] if len(pending) > 1 and rng.random() < profile.parallel else pending[:1]
        return self._calls(profile, view, rng, names)

    def plan(self, profile: Profile, view: View) -> list[str]:
        """The tools this conversation will call, in order: a prefix of the declared catalog tools."""
        rng = Random(f"{self.seed}|plan|{profile.model}|{view.system}|{view.task}")
        tools = [t for t in view.tools if t in CATALOG]
        if not tools or rng.random() < 0.08:
            return []
        return tools[: rng.randint(1, min(4, len(tools)))]

    # reactions

    def _after_failure(self, profile: Profile, view: View, rng: Random) -> Reply:
        turns = view.turns
        last = turns[-1]
        same = len(turns) >= 2 and _sig(turns[-2]) == _sig(last)
        if same and rng.random() < profile.stuck:
            return self._again(view, last.text, last.calls)
        streak = next((i for i, t in enumerate(reversed(turns)) if not t.failed), len(turns))
        weights = {
            "recover": profile.recover,
            "repeat": profile.repeat,
            "flail": profile.flail,
            "give_up": profile.give_up * (3 if streak >= 4 else 1),
        }
        action = rng.choices(list(weights), list(weights.values()))[0]
        if action == "repeat":
            return self._again(view, last.text, last.calls)
        if action == "give_up":
            return self._final(view, gave_up=True)
        name = self._failing_tool(profile, view)
        if name is None:
            return self._final(view, gave_up=True)
        if action == "flail":
            kinds = [k for k in profile.malformed if k != "in_text"] or ["schema_violation"]
            kind = rng.choices(kinds, [profile.malformed.get(k, 1.0) for k in kinds])[0]
            return self._calls(profile, view, rng, [name], forced=kind)
        return self._calls(profile, view, rng, [name], forced="good")

    def _failing_tool(self, profile: Profile, view: View) -> str | None:
        last = view.turns[-1]
        for result in last.results:
            if result.failed:
                if result.name in view.tools and result.name in CATALOG:
                    return result.name
                alias = next((t.name for t in CATALOG.values() if t.alias == result.name), None)
                if alias in view.tools:
                    return alias
        pending = [n for n in self.plan(profile, view) if n not in _done(view)]
        return pending[0] if pending else next((n for n in view.tools if n in CATALOG), None)

    def _again(self, view: View, text: str, calls: list[Call]) -> Reply:
        if not calls:
            return Reply(text=text)
        specs = tuple(ToolCallSpec(c.name, c.arguments, self._id(view)) for c in calls)
        return Reply(tool_calls=specs)

    def _final(self, view: View, *, gave_up: bool) -> Reply:
        topic = view.task.split("\n", 1)[0][:90]
        if gave_up:
            return Reply(text=f"I'm sorry, I could not finish this ({topic}): the tools kept failing.")
        ok = [r.content for t in view.turns for r in t.results if not r.failed]
        if not ok:
            return Reply(text=f"Here is my answer to: {topic}. No tools were needed.")
        return Reply(text=f"Done: {topic}. Based on {len(ok)} tool result(s), latest: {ok[-1][:120]}")

    # calls

    def _calls(self, profile: Profile, view: View, rng: Random, names: list[str], forced: str = "") -> Reply:
        specs: list[ToolCallSpec] = []
        finish: str | None = None
        for i, name in enumerate(names):
            tool, last = CATALOG[name], i == len(names) - 1
            kind = forced or _draw(profile, rng)
            if kind == "in_text" and len(names) == 1:
                return Reply(text=_in_text(profile, rng, name, tool.good(view.task, rng)))
            if kind == "truncated" and last:
                finish = TOKEN_LIMIT[view.api]
                specs.append(ToolCallSpec(name, _cut(view, tool.good(view.task, rng), rng), self._id(view)))
                continue
            if kind == "invalid_json" and _raw_arguments(view):
                specs.append(ToolCallSpec(name, _broken(tool.good(view.task, rng), rng), self._id(view)))
                continue
            call_name, args = _arguments(tool, kind, view.task, rng)
            specs.append(ToolCallSpec(call_name, _dumps(args), self._id(view)))
        text = rng.choice(_PREAMBLES) if rng.random() < profile.preamble else ""
        return Reply(text=text, tool_calls=tuple(specs), finish_reason=finish)

    def _id(self, view: View) -> str | None:
        prefix = _ID_PREFIX.get(view.api)
        # Gemini 2.x sends no call ids; toolwatch gives such calls stable synthetic ones.
        return None if prefix is None else f"{prefix}{self.salt}{next(self._ids):08d}"


def _draw(profile: Profile, rng: Random) -> str:
    u = rng.random()
    for kind, p in [*profile.malformed.items(), ("bad", profile.bad_args)]:
        if u < p:
            return kind
        u -= p
    return "good"


def _arguments(tool: Tool, kind: str, task: str, rng: Random) -> tuple[str, Args]:
    if kind == "unknown_tool":
        return tool.alias, tool.good(task, rng)
    if kind in ("schema_violation", "invalid_json"):  # invalid_json where the wire only carries objects
        return tool.name, tool.violating(task, rng)
    if kind == "bad":
        return tool.name, tool.bad(task, rng)
    return tool.name, tool.good(task, rng)


def _raw_arguments(view: View) -> bool:
    """Whether the wire carries argument text as written (else a parsed object: Gemini, Anthropic JSON)."""
    return view.api == "openai" or (view.api == "anthropic" and view.stream)


def _cut(view: View, args: Args, rng: Random) -> str:
    """A call stopped by the token limit: its text cut short, or (on an object-only wire) its last keys gone."""
    if _raw_arguments(view):
        text = _dumps(args)
        return text[: max(1, int(len(text) * rng.uniform(0.3, 0.85)))]
    keep = max(0, len(args) - 1)
    return _dumps(dict(list(args.items())[:keep]))


def _broken(args: Args, rng: Random) -> str:
    text = _dumps(args)
    forms = (
        lambda: repr(args),  # Python literal quotes
        lambda: text[:-1] + ",}",  # trailing comma
        lambda: text.replace('"', "", 2),  # an unquoted key
        lambda: json.dumps(text),  # a JSON string holding the object
        lambda: text[: len(text) // 2],  # no end
    )
    return rng.choice(forms)()


def _in_text(profile: Profile, rng: Random, name: str, args: Args) -> str:
    style = profile.in_text_style
    if style == "glm" and rng.random() < 0.5:
        style = "tool_call"
    if style == "glm":
        pairs = "".join(
            f"<arg_key>{k}</arg_key>\n<arg_value>{v if isinstance(v, str) else _dumps(v)}</arg_value>\n"
            for k, v in args.items()
        )
        return f"<tool_call>{name}\n{pairs}</tool_call>"
    call = _dumps({"name": name, "arguments": args})
    if style == "fenced":
        return f"I'll use {name} for this:\n\n```json\n{call}\n```"
    return f"<tool_call>\n{call}\n</tool_call>"


def _done(view: View) -> set[str]:
    return {r.name for t in view.turns for r in t.results if not r.failed}


def _unresolved(view: View) -> bool:
    """Whether the last failure was never followed by a successful result."""
    outcome: bool | None = None
    for t in view.turns:
        for r in t.results:
            outcome = r.failed
        if t.failed and not t.results:
            outcome = True
    return bool(outcome)


def _sig(turn: Turn) -> tuple[Any, ...]:
    return (turn.text if not turn.calls else "", tuple((c.name, c.arguments) for c in turn.calls))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
