"""The demo's agents: who they are, which API and model they use, their tools and what they are asked.

| agent | API (proxy mount) | model | tools |
|---|---|---|---|
| `support-bot` | OpenAI Chat (`/openai/v1`), then `/glm` | `gpt-4o`, then `glm-4.5` | orders, refunds, docs, email |
| `code-fixer` | Anthropic (`/anthropic`), half streamed | `claude-sonnet-4-5` | files, tests, python |
| `data-analyst` | OpenAI-compatible (`/glm`), some streamed | `glm-4.5` | SQL, python, email |
| `travel-planner` | Gemini (`/gemini`), half `alt=sse` | `gemini-2.5-flash` | weather, docs |
| `research-assistant` | OpenAI Chat (`/openai/v1`), some streamed | `gpt-4o` | docs, python, email |
| `nightly-triage` | Anthropic (`/anthropic`) | `claude-sonnet-4-5` | docs, files, tests |

All but `nightly-triage` send `Toolwatch-Agent`, and `Toolwatch-Session-Id` on most sessions; toolwatch
infers the other sessions from the conversations.

`support-bot` switches model at `switch_at` (a session number): the moment shows on the dashboard as one
agent's malformed rate jumping.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from toolwatch.demo.tools import CITIES


@dataclass(frozen=True)
class Route:
    api: str  # "openai", "anthropic" or "gemini": the wire format
    mount: str  # where the proxy serves it
    model: str


@dataclass(frozen=True)
class Agent:
    name: str
    routes: tuple[Route, ...]  # the first before the switch, the last after it
    tools: tuple[str, ...]
    system: str
    tasks: tuple[str, ...]  # templates: {order}, {path}, {city}, {table}, {n}
    weight: float
    stream: float = 0.0  # share of sessions that stream
    headers: bool = True  # sends Toolwatch-Agent (and, on most sessions, Toolwatch-Session-Id)
    session_header: float = 0.85
    max_steps: int = 8
    key: str = ""

    def route(self, switched: bool) -> Route:
        return self.routes[-1] if switched else self.routes[0]

    def task(self, rng: Random, number: int) -> str:
        template = rng.choice(self.tasks)
        return f"[#{number}] " + template.format(
            order=f"ORD-{rng.randint(10001, 99999)}",
            path=rng.choice(("src/billing/invoice.py", "src/api/routes.py", "src/cart/discount.py", "src/app.py")),
            city=rng.choice(CITIES),
            table=rng.choice(("orders", "signups", "payments", "tickets")),
            n=rng.randint(2, 9),
        )


OPENAI = Route("openai", "/openai/v1", "gpt-4o")
GLM = Route("openai", "/glm", "glm-4.5")
CLAUDE = Route("anthropic", "/anthropic", "claude-sonnet-4-5")
GEMINI = Route("gemini", "/gemini", "gemini-2.5-flash")

AGENTS: tuple[Agent, ...] = (
    Agent(
        "support-bot",
        (OPENAI, GLM),
        ("lookup_order", "search_docs", "refund_order", "send_email"),
        "You are the support assistant of an online shop. Be brief and kind.",
        (
            "Customer writes: order {order} arrived damaged, they want a refund.",
            "Customer asks: where is my order {order}? It is {n} days late.",
            "Customer writes: I was charged twice for {order}, please fix it.",
        ),
        weight=3.0,
        stream=0.2,
        key="sk-demo-support-7f3a",
    ),
    Agent(
        "code-fixer",
        (CLAUDE,),
        ("read_file", "edit_file", "run_tests", "run_python"),
        "You are a careful coding agent. Read before you edit; run the tests after.",
        (
            "Bug report: the discount in {path} is applied twice for returning customers.",
            "CI is red: a rounding error in {path} makes totals off by a cent.",
            "Refactor request: {path} computes the total in {n} places; keep one.",
        ),
        weight=3.0,
        stream=0.5,
        key="sk-ant-demo-coder-19be",
    ),
    Agent(
        "data-analyst",
        (GLM,),
        ("query_db", "run_python", "send_email"),
        "You answer questions about the company's data with SQL on the warehouse.",
        (
            "Question: how many {table} did we have per month this quarter?",
            "Question: did {table} drop after the pricing change? Compare the last {n} months.",
        ),
        weight=2.0,
        stream=0.3,
        key="sk-demo-glm-analyst-c001",
    ),
    Agent(
        "travel-planner",
        (GEMINI,),
        ("get_weather", "search_docs"),
        "You plan trips. Check the weather before you suggest anything.",
        (
            "Plan a {n}-day trip to {city}: what should I pack?",
            "Is it a good week for a hike near {city}?",
        ),
        weight=1.5,
        stream=0.5,
        key="AIzaDemoTravelPlanner0000000000000000",
    ),
    Agent(
        "research-assistant",
        (OPENAI,),
        ("search_docs", "run_python", "send_email"),
        "You research questions for the team and mail a short summary.",
        (
            "Research: what do our docs say about rate limits for {table}?",
            "Research: summarise the onboarding guide in {n} bullet points.",
        ),
        weight=2.5,
        stream=0.3,
        key="sk-demo-research-8d21",
    ),
    Agent(
        "nightly-triage",
        (CLAUDE,),
        ("search_docs", "read_file", "run_tests"),
        "You triage last night's failed jobs and propose a next step.",
        (
            "Nightly job failed: tests for {path} timed out.",
            "Nightly job failed: import error in {path}.",
        ),
        weight=1.0,
        headers=False,
        key="sk-ant-demo-nightly-5e0c",
    ),
)
