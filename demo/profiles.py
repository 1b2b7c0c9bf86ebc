"""Reliability profiles: how often each scripted model gets a tool call wrong, and what it does after a failure.

Rates are per tool call (`malformed`, `bad_args`) or per decision (the rest). After a failed step the model
picks one of four reactions, weighted: `recover` (a corrected call), `repeat` (the identical call again; a
model that repeated last time is `stuck` and repeats with that probability, which makes loops), `flail`
(another malformed call) or `give_up` (a final answer that admits the failure). `overload` is the chance that
the first attempt of a request is refused with a provider-shaped 429/5xx; a retry then succeeds.

| model | malformed calls | tool errors from bad arguments | after a failure |
|---|---|---|---|
| `gpt-4o` | ~2%, mostly schema violations | 3% | recovers 90% |
| `claude-sonnet-4-5` | ~9%: schema, unknown tool, truncated, a little JSON and text | 8% | recovers 70% |
| `glm-4.5` (OpenAI-compatible) | ~29%: calls in text, broken JSON, unknown tools, truncated | 14% | recovers 45% |
| `gemini-2.5-flash` | ~4%: schema, unknown tool, truncated | 6% | recovers 80% |

The rates apply to each new call; repeated and flailing calls come on top, so toolwatch measures more for
the flaky model (a 30-second run shows `glm-4.5` near 40%). A model not listed answers with `DEFAULT`, the
`gpt-4o` profile under that model's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

KINDS = ("truncated", "invalid_json", "unknown_tool", "schema_violation", "in_text")


@dataclass(frozen=True)
class Profile:
    model: str
    malformed: dict[str, float] = field(default_factory=dict)  # kind -> chance per tool call
    bad_args: float = 0.0  # schema-valid arguments that make the tool fail
    parallel: float = 0.0  # two planned calls in one response
    preamble: float = 0.0  # a sentence of text before the calls
    recover: float = 1.0
    repeat: float = 0.0
    flail: float = 0.0
    give_up: float = 0.0
    stuck: float = 0.0
    overload: float = 0.0
    overload_status: int = 500
    latency_s: tuple[float, float] = (0.4, 0.9)  # range of the time to answer, before the demo's latency scale
    in_text_style: str = "tool_call"  # "tool_call" (Hermes/Qwen JSON), "glm" (<arg_key>), "fenced" (```json)

    def __post_init__(self) -> None:
        unknown = set(self.malformed) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown malformed kinds: {sorted(unknown)}")
        if sum(self.malformed.values()) + self.bad_args >= 1:
            raise ValueError("malformed and bad-argument rates must leave room for good calls")

    @property
    def malformed_rate(self) -> float:
        return sum(self.malformed.values())


GPT_4O = Profile(
    "gpt-4o",
    malformed={"schema_violation": 0.01, "invalid_json": 0.004, "unknown_tool": 0.003, "truncated": 0.003},
    bad_args=0.03,
    parallel=0.3,
    preamble=0.1,
    recover=0.9,
    repeat=0.05,
    give_up=0.05,
    stuck=0.3,
    overload=0.005,
    overload_status=500,
    latency_s=(0.35, 0.9),
)
CLAUDE_SONNET = Profile(
    "claude-sonnet-4-5",
    malformed={
        "schema_violation": 0.04,
        "unknown_tool": 0.015,
        "truncated": 0.015,
        "invalid_json": 0.008,
        "in_text": 0.008,
    },
    bad_args=0.08,
    parallel=0.2,
    preamble=0.7,
    recover=0.7,
    repeat=0.12,
    flail=0.06,
    give_up=0.12,
    stuck=0.5,
    overload=0.02,
    overload_status=529,
    latency_s=(0.7, 1.8),
    in_text_style="fenced",
)
GLM_45 = Profile(
    "glm-4.5",
    malformed={
        "in_text": 0.1,
        "invalid_json": 0.06,
        "schema_violation": 0.05,
        "unknown_tool": 0.04,
        "truncated": 0.04,
    },
    bad_args=0.14,
    parallel=0.1,
    preamble=0.3,
    recover=0.45,
    repeat=0.25,
    flail=0.18,
    give_up=0.12,
    stuck=0.6,
    overload=0.03,
    overload_status=429,
    latency_s=(0.3, 2.5),
    in_text_style="glm",
)
GEMINI_FLASH = Profile(
    "gemini-2.5-flash",
    malformed={"schema_violation": 0.02, "unknown_tool": 0.01, "truncated": 0.01},
    bad_args=0.06,
    parallel=0.25,
    preamble=0.2,
    recover=0.8,
    repeat=0.08,
    flail=0.05,
    give_up=0.07,
    stuck=0.4,
    overload=0.01,
    overload_status=503,
    latency_s=(0.3, 0.7),
)

PROFILES: dict[str, Profile] = {p.model: p for p in (GPT_4O, CLAUDE_SONNET, GLM_45, GEMINI_FLASH)}
DEFAULT = GPT_4O


def profile_for(model: str) -> Profile:
    """The profile of a model by name (a dated or prefixed name such as `models/gemini-2.5-flash` matches)."""
    name = model.rsplit("/", 1)[-1]
    for known, profile in PROFILES.items():
        if name == known or name.startswith(known + "-"):
            return profile
    return replace(DEFAULT, model=name)
