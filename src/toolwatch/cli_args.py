"""The ``toolwatch`` command line's arguments and help: every command with its description, examples, the
environment variables it reads and its exit codes (``toolwatch COMMAND --help``). ``cli.py`` runs them.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from toolwatch.cli_help import AGENTS, READING, SERVING, epilog, report_columns
from toolwatch.errors import EXIT_ERROR

LAST_MAX = 10_000


class _Parser(argparse.ArgumentParser):
    """Usage errors show the usage of the command they are about, suggest a close flag or command, and
    say where the help is. A command's epilog is written only when its help is asked for."""

    strict = False  # True for a subcommand: an unknown argument is its own usage error, shown with its usage
    epilog_of: Callable[[], str] | None = None

    def format_help(self) -> str:
        if self.epilog_of is not None:
            self.epilog = self.epilog_of()
        return super().format_help()

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        ns, extras = super().parse_known_args(args, namespace)
        if extras and self.strict:
            self.error("unrecognized arguments: " + " ".join(extras) + self._suggest(extras))
        return ns, extras

    def _suggest(self, extras: list[str]) -> str:
        flags = [f for f in self._option_string_actions if f.startswith("--")]
        for extra in extras:
            close = difflib.get_close_matches(extra.split("=")[0], flags, n=1) if extra.startswith("-") else []
            if close:
                return f" (did you mean {close[0]}?)"
        return ""

    def error(self, message: str) -> Any:
        choice = re.search(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            options = re.findall(r"'([^']*)'", choice.group(3))
            close = difflib.get_close_matches(choice.group(2), options, n=1)
            what = "command" if choice.group(1) == "COMMAND" else choice.group(1)
            message = f"unknown {what} {choice.group(2)!r}: " + (
                f"did you mean {close[0]}?" if close else f"one of {', '.join(options)}"
            )
        usage = self.format_usage().strip()
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n{usage}   (`{self.prog} --help` shows more)\n")

    def format_usage(self) -> str:
        """One short line: the command, what it requires, ``[options]``, its arguments (``--help`` has all)."""
        words = [self.prog]
        grouped = {id(a) for g in self._mutually_exclusive_groups if g.required for a in g._group_actions}
        for g in self._mutually_exclusive_groups:
            if g.required:
                words.append("(" + " | ".join(f"{a.option_strings[0]} {_meta(a)}" for a in g._group_actions) + ")")
        words += [f"{a.option_strings[0]} {_meta(a)}" for a in self._actions if a.option_strings and a.required]
        if any(a.option_strings and not a.required and id(a) not in grouped for a in self._actions):
            words.append("[options]")
        for a in self._actions:
            if a.option_strings or a.help == argparse.SUPPRESS:
                continue
            if isinstance(a, argparse._SubParsersAction):
                words.append("COMMAND ...")
            else:
                words.append(f"[{_meta(a)}]" if a.nargs == "?" else _meta(a))
        return "usage: " + " ".join(words) + "\n"


def _meta(action: argparse.Action) -> str:
    if isinstance(action.metavar, str):
        return action.metavar
    if action.choices is not None and not action.option_strings:
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return action.dest.upper()


class _SubParser(_Parser):
    strict = True


class _Version(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"toolwatch {version('toolwatch')}")
        except PackageNotFoundError:
            print("toolwatch (not installed: no version)")
        parser.exit()


class _Completion(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, shell: Any, *_: Any) -> None:
        import shtab

        print(shtab.complete(parser, shell=shell))
        parser.exit()


def _common(p: argparse.ArgumentParser, store: bool = True) -> None:
    if store:
        p.add_argument("--config", metavar="FILE", help="a toolwatch.toml (or TOOLWATCH_CONFIG)")
        p.add_argument(
            "--store", metavar="DSN", help="chdb:///abs/path or http(s)://user:pass@host:8123/db (or TOOLWATCH_STORE)"
        )
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors")


def _reading(p: argparse.ArgumentParser, json_help: str) -> None:
    _common(p)
    p.add_argument("--server", metavar="URL", help="read through this running toolwatch (default: the store's own)")
    p.add_argument("--json", action="store_true", help=json_help)


def _window(p: argparse.ArgumentParser, since: str, sessions: bool = True) -> None:
    start = f"window start: a duration back from --until, or an ISO time ({since})"
    p.add_argument("--since", default=since, metavar="WHEN", help=start)
    p.add_argument("--until", metavar="WHEN", help="window end: a duration back from now, or an ISO time (now)")
    if sessions:
        idle = "idle time after which a session waiting for tool results is abandoned (10m)"
        p.add_argument("--abandon", metavar="DURATION", help=idle)
        p.add_argument("--cascade-run", type=int, metavar="N", help="consecutive failed steps that make a cascade (3)")


def _last(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument("--last", type=int, metavar="N", help=f"at most this many, 1..{LAST_MAX} ({default})")


def parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog="toolwatch",
        description="toolwatch: a drop-in reverse proxy for LLM APIs that records every tool call, so you can\n"
        "see how reliably each model drives your tools.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.epilog_of = lambda: epilog(
        [
            ("toolwatch demo", "see it work: scripted agents and upstream, no API key"),
            ("toolwatch serve", "the proxy on http://127.0.0.1:8787 and its recorder"),
            ("toolwatch report --since 24h", "per-model reliability"),
            ("toolwatch sessions --failed", "what went wrong, newest first"),
            ("toolwatch session h:my-session-id", "one session, step by step"),
            ("toolwatch COMMAND --help", "each command's flags, examples and environment"),
        ],
        ("TOOLWATCH_STORE", "TOOLWATCH_CONFIG", "TOOLWATCH_ADMIN_TOKEN", "TOOLWATCH_<SETTING>", "TOOLWATCH_DEBUG"),
        AGENTS,
        "data: the store and its spool live in the per-user data folder (~/.local/share/toolwatch on Linux),\n"
        "so every command finds them from any folder; ./toolwatch-data/store is used where it exists.",
    )
    ap.add_argument("--version", action=_Version, nargs=0, help="print the version and exit")
    ap.add_argument("--debug", action="store_true", help="show tracebacks of errors (or TOOLWATCH_DEBUG=1)")
    ap.add_argument(
        "--print-completion", action=_Completion, choices=("bash", "zsh", "tcsh"), metavar="SHELL",
        help="print a completion script for bash, zsh or tcsh, e.g. toolwatch --print-completion bash >> ~/.bashrc",
    )  # fmt: skip
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=_SubParser)
    commands: dict[str, argparse.ArgumentParser] = {}

    def command(name: str, summary: str, about: str, epilog: Callable[[], str]) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=summary, description=f"{summary[0].upper()}{summary[1:]}.\n\n{about}".rstrip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        assert isinstance(p, _Parser)
        p.epilog_of = epilog
        commands[name] = p
        return p

    _serve_parser(command)
    _demo_parser(command)
    _reading_parsers(command)
    _alert_parsers(command)
    _store_parsers(command)
    ap.set_defaults(commands=commands)
    return ap


Command = Callable[[str, str, str, Callable[[], str]], argparse.ArgumentParser]


def _serve_parser(command: Command) -> None:
    s = command(
        "serve",
        "run the proxy and its recorder",
        "Agents use it as their API base URL; every exchange is forwarded unchanged and recorded off the\n"
        "request path. The first line on standard output is `toolwatch listening on URL` (serve has no\n"
        "--json: that line is its machine-readable output). Ctrl-C (or SIGTERM) stops it in order.",
        lambda: epilog(
            [
                ("toolwatch serve", "127.0.0.1:8787, the per-user store"),
                ("toolwatch serve --port 0", "a free port; the URL is printed"),
                ("toolwatch serve --store chdb:///var/lib/toolwatch/store", ""),
                ("TOOLWATCH_UPSTREAM_OPENAI_URL=http://127.0.0.1:9000 toolwatch serve", "another upstream"),
            ],
            SERVING,
            AGENTS,
        ),
    )
    _common(s)
    s.add_argument("--host", help="listen address (127.0.0.1; another needs admin_token)")
    s.add_argument("--port", type=int, help="listen port (8787; 0 picks a free one)")
    s.add_argument("--spool", metavar="DIR", help="spool folder (default: beside the embedded store)")
    s.add_argument("--workers", type=int, metavar="N", help="proxy processes sharing the port (1)")


def _demo_parser(command: Command) -> None:
    d = command(
        "demo",
        "see toolwatch work with live data: scripted agents, upstream and a throwaway store",
        "Starts `toolwatch serve` on a temporary store with a scripted upstream (three models of different\n"
        "reliability, every kind of malformed call, tool errors, cascades, loops, a model switch) and agents\n"
        "driving traffic through it, prints the dashboard's URL, and runs until Ctrl-C.\n"
        "--json prints one JSON line when it listens ({url, dashboard, store, kept}) and one at the end\n"
        "({sessions, llm_calls, tool_calls, store, kept}).",
        lambda: epilog(
            [
                ("toolwatch demo", "until Ctrl-C"),
                ("toolwatch demo --sessions 50 --latency 0", "a quick bounded run"),
                ("toolwatch demo --keep ./demo-data", "keep the store, then: toolwatch report --store ..."),
            ],
            ("NO_COLOR",),
        ),
    )
    _common(d, store=False)
    d.add_argument("--port", type=int, default=0, help="listen port for the demo's toolwatch (default: a free one)")
    d.add_argument("--seed", type=int, default=7, help="the scripted models' and agents' seed (7)")
    d.add_argument("--sessions", type=int, help="stop after this many agent sessions (default: until Ctrl-C)")
    d.add_argument("--duration", type=float, help="stop starting sessions after this many seconds")
    d.add_argument("--keep", metavar="DIR", help="keep the store in this folder (default: removed at the end)")
    d.add_argument("--latency", type=float, default=1.0, help="scale of the scripted answer times (0: at once)")
    d.add_argument("--json", action="store_true", help="print JSON lines instead of the banner")


def _reading_parsers(command: Command) -> None:
    c = command(
        "calls",
        "the most recent LLM calls with their tool calls",
        "Newest first: status, outcome, finish reason, tokens, latency, session, and each tool call with its\n"
        "arguments as sent, its malformed kind and its outcome (ok, error, pending, missing).",
        lambda: epilog([("toolwatch calls", "the last 20"), ("toolwatch calls --last 100 --json", "")]),
    )
    _reading(c, "print a JSON array of calls (llm_calls' column names; tool_calls as objects)")
    _last(c, 20)
    r = command(
        "report",
        "per-model reliability figures",
        "One row per model over the window: malformed tool calls, tool errors, sessions and how they ended,\n"
        "recoveries, cascades, loops, HTTP errors and latency; then the malformed calls by kind, the open\n"
        "sessions, and the least reliable model with the figure that sets it apart.",
        lambda: epilog(
            [
                ("toolwatch report", "the last 24 hours"),
                ("toolwatch report --since 7d --agent support-bot", ""),
                ("toolwatch report --since 2026-11-24T00:00Z --until 2026-11-25T00:00Z", ""),
                ("toolwatch report --json | jq '.[] | {model, malformed_rate}'", ""),
            ],
            READING,
            report_columns(),
        ),
    )
    _reading(r, "print a JSON array, one object per model (fields: README, Reliability metrics)")
    _window(r, "24h")
    r.add_argument("--agent", help="only this agent (Toolwatch-Agent header)")
    r.add_argument("--model", help="only this model")
    ss = command(
        "sessions",
        "sessions in a window, newest first",
        "Each session's key (h:ID from the Toolwatch-Session-Id header, k:HASH when inferred), model, outcome\n"
        "(open, abandoned, success, failed), steps, failed and unrecovered steps, cascade and loop.",
        lambda: epilog(
            [("toolwatch sessions --failed", "failed, abandoned or cascading"), ("toolwatch sessions --last 500", "")]
        ),
    )
    _reading(ss, "print a JSON array of sessions")
    _window(ss, "24h")
    ss.add_argument("--failed", action="store_true", help="only failed, abandoned or cascading sessions")
    ss.add_argument("--model", help="only sessions of this model")
    ss.add_argument("--agent", help="only this agent")
    _last(ss, 50)
    one = command(
        "session",
        "one session's timeline, step by step",
        "Every step with its model, status and tool calls (arguments, malformed kind, outcome), the first\n"
        "failure and whether it was recovered. Exit 1 when the window holds no such session.",
        lambda: epilog([("toolwatch session h:my-session-id", ""), ("toolwatch session k:3f2a... --since 30d", "")]),
    )
    _reading(one, "print a JSON array of steps")
    one.add_argument("session", help="a session as `toolwatch sessions` lists it (or a Toolwatch-Session-Id)")
    _window(one, "7d")


def _alert_parsers(command: Command) -> None:
    al = command(
        "alerts",
        "regression alerts: list them, acknowledge, silence",
        "Alerts open when an agent's new model is worse than its old one (switch_regression), when a model\n"
        "drifts, or when a threshold rule fires. Exit 1 when the alert or silence given does not exist.",
        lambda: epilog(
            [
                ("toolwatch alerts --open", ""),
                ("toolwatch alerts ack ID", ""),
                ("toolwatch alerts silence ID --for 2h", ""),
                ("toolwatch alerts silence --agent support-bot --for 24h --comment 'canary'", ""),
                ("toolwatch alerts silences", "then: toolwatch alerts unsilence SILENCE_ID"),
            ],
            (*READING, "USER"),
        ),
    )
    _reading(al, "print JSON: an array of alerts (list), of silences (silences), or the alert or silence changed")
    al.add_argument(
        "action", nargs="?", default="list", choices=("list", "ack", "silence", "unsilence", "silences"),
        help="list (default), ack ID, silence ID|--agent NAME --for 2h, unsilence SILENCE_ID, silences",
    )  # fmt: skip
    al.add_argument("id", nargs="?", help="an alert id (ack, silence) or a silence id (unsilence)")
    al.add_argument("--open", action="store_true", help="only open alerts")
    al.add_argument("--agent", help="only this agent's alerts (list), or silence this agent's alerts")
    al.add_argument("--kind", help="switch_regression, drift or threshold")
    al.add_argument("--since", metavar="WHEN", help="list resolved alerts updated since then too (7d)")
    _last(al, 100)
    al.add_argument("--for", dest="duration", metavar="DURATION", help="how long a silence lasts, e.g. 2h")
    al.add_argument("--by", default=os.environ.get("USER", ""), help="who acknowledges or silences ($USER)")
    al.add_argument("--comment", default="", help="why (silence)")
    ck = command(
        "check",
        "for deploy pipelines: exit 1 when a regression alert is open, 0 when none is",
        "Counts the open switch_regression and drift alerts opened within --since.",
        lambda: epilog(
            [("toolwatch check --agent support-bot || rollback", ""), ("toolwatch check --since 2h --json", "")]
        ),
    )
    _reading(ck, "print a JSON object: agent, since, open, alerts")
    ck.add_argument("--agent", help="only this agent (Toolwatch-Agent, or upstream:key-fingerprint)")
    ck.add_argument("--since", default="24h", metavar="WHEN", help="alerts opened since then (24h)")
    cp = command(
        "compare",
        "two models on one agent, side by side, with intervals and latency",
        "Each per-session indicator for both models with its 95% interval, the difference, the one-sided\n"
        "p-value that the new model is worse, and latency.",
        lambda: epilog([("toolwatch compare --agent support-bot --before gpt-4o --after glm-4.5 --since 7d", "")]),
    )
    _reading(cp, "print a JSON object: agent, before, after, since, until, sessions, metrics, latency")
    cp.add_argument("--agent", required=True, help="the agent")
    cp.add_argument("--before", required=True, help="the old model")
    cp.add_argument("--after", required=True, help="the new model")
    _window(cp, "7d", sessions=False)


def _store_parsers(command: Command) -> None:
    m = command(
        "migrate",
        "apply the store's migrations",
        "Creates the store when it does not exist. A running serve applies them itself at start.",
        lambda: epilog([("toolwatch migrate --store chdb:///var/lib/toolwatch/store", "")], READING[:2]),
    )
    _common(m)
    m.add_argument("--json", action="store_true", help="print a JSON object: applied [{version, name}]")
    rc = command(
        "reclassify",
        "re-apply the tool-result outcome rules to stored results",
        "After changing outcome_rules: results recorded within --since are judged again (by the running\n"
        "server when it holds the store, with its rules).",
        lambda: epilog([("toolwatch reclassify --since 7d", "")]),
    )
    _reading(rc, "print a JSON object: examined, changed, since")
    rc.add_argument("--since", default="30d", metavar="WHEN", help="results recorded since then (30d)")
    dl = command(
        "deadletter",
        "what could not be recorded: list it, or put it back into the spool",
        "Exchanges the recorder could not decode or store are set aside in <spool>/deadletter.",
        lambda: epilog(
            [("toolwatch deadletter list", ""), ("toolwatch deadletter replay", "put whole frames back")],
            ("TOOLWATCH_STORE", "TOOLWATCH_SPOOL", "TOOLWATCH_CONFIG"),
        ),
    )
    _common(dl)
    dl.add_argument("action", choices=("list", "replay"), help="list the dead letters, or replay the whole frames")
    dl.add_argument("--spool", metavar="DIR", help="spool folder (default: beside the embedded store)")
    dl.add_argument("--json", action="store_true", help="print JSON: an array of dead letters, or {replayed, kept}")
    de = command(
        "delete",
        "remove a user's or a session's calls from every table (data protection)",
        "Through the running server when it holds the store. Deleting what is not there deletes nothing (exit 0).",
        lambda: epilog([("toolwatch delete --user alice", ""), ("toolwatch delete --session h:s-42 --json", "")]),
    )
    _reading(de, "print a JSON object: calls, rows {table: count}")
    who = de.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a Toolwatch-User-Id")
    who.add_argument("--session", help="a session as listed by `toolwatch sessions` (or a Toolwatch-Session-Id)")
