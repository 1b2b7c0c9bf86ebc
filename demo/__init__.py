"""`toolwatch demo`: live data for every toolwatch feature, without an API key.

Two pieces, used together by the `demo` command (which starts `toolwatch serve` between them):

- `DemoUpstream`: a scripted LLM API on 127.0.0.1 that answers OpenAI Chat Completions, Anthropic Messages
  and Gemini requests (JSON and streamed) with the wire formats of `wire_*.py`. Each model has a reliability
  profile (`profiles.PROFILES`): `gpt-4o` is reliable, `claude-sonnet-4-5` middling, `glm-4.5` (served as an
  OpenAI-compatible upstream) flaky, with calls written into its text, broken JSON, unknown tools, schema
  violations and calls cut by the token limit; `gemini-2.5-flash` is close to reliable.
- `run_demo`: agents (`agents.AGENTS`) that talk to toolwatch's proxy in those formats, run fake tools
  (`tools.CATALOG`), and produce every malformed kind, tool errors with recoveries, cascades, loops, sessions
  with and without session headers, and one agent (`support-bot`) that switches model halfway.

Both are seeded (`random.Random`): the same seed gives the same conversations, whatever the timing. ::

    async with DemoUpstream(seed=7) as up:
        env = up.toolwatch_env()  # TOOLWATCH_UPSTREAM_{OPENAI,ANTHROPIC,GEMINI,GLM}_URL and _GLM_API=openai
        # ... start `toolwatch serve` with env, read the URL it prints ...
        stats = await run_demo(serve_url, seed=7)  # until cancelled; sessions=N or duration=S to bound it

Public API:

- `DemoUpstream(*, seed=7, latency=1.0, host="127.0.0.1", port=0)`: an async context manager; `url`,
  `toolwatch_env()`, `requests`. `latency` scales the profiles' answer times (0: instant).
- `run_demo(proxy_url, *, seed=7, sessions=None, duration=None, pace=2.0, concurrency=16, tool_delay=0.3,
  switch_at=None, stats=None) -> DemoStats`: see `workload.run_demo`. Raises `DemoError` when the proxy
  cannot be reached.
- `DemoStats`: counts of sessions, LLM calls (per model), tool calls, tool errors, rejected calls, ...
- `PROFILES`, `AGENTS`: what the models and agents do.

Nothing here imports the rest of toolwatch (an import-linter contract): the demo speaks the wire formats on
its own, as any agent and any provider would.
"""

from toolwatch.demo.agents import AGENTS, Agent
from toolwatch.demo.profiles import PROFILES, Profile
from toolwatch.demo.upstream import DemoUpstream
from toolwatch.demo.workload import DemoError, DemoStats, run_demo

__all__ = ["AGENTS", "PROFILES", "Agent", "DemoError", "DemoStats", "DemoUpstream", "Profile", "run_demo"]
