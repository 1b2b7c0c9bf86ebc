"""The ``toolwatch`` command line: serve, migrate, calls.

Reading commands open the store themselves only when no running toolwatch holds it; otherwise they
read through that server's ``/_toolwatch/api/`` (``--server``, else the one recorded beside the spool).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from toolwatch.config import Settings, load_settings
from toolwatch.errors import ConfigError, StoreError, StoreLockedError, ToolwatchError
from toolwatch.logs import setup_logging


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="path of a toolwatch.toml (or TOOLWATCH_CONFIG)")
    p.add_argument("--store", help="clickhouse-connect DSN: chdb:///abs/path or http(s)://user:pass@host:8123/db")


def _reading(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--server", help="read through this running toolwatch (http://host:port)")
    p.add_argument("--json", action="store_true", help="print JSON")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="toolwatch", description="LLM tool-call reliability proxy")
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the proxy and its recorder")
    _common(s)
    s.add_argument("--host", help="listen address (default 127.0.0.1)")
    s.add_argument("--port", type=int, help="listen port (default 8787; 0 picks a free one)")
    s.add_argument("--spool", help="spool directory (default beside the embedded store)")
    m = sub.add_parser("migrate", help="apply the store's migrations")
    _common(m)
    c = sub.add_parser("calls", help="the most recent calls with their tool calls")
    _reading(c)
    c.add_argument("--last", type=int, default=20, help="how many calls (default 20)")
    r = sub.add_parser("report", help="per-model reliability figures")
    _reading(r)
    r.add_argument("--since", default="24h", help="window start: a duration back from --until (24h) or an ISO time")
    r.add_argument("--until", help="window end: ISO time (default now)")
    r.add_argument("--agent", help="only this agent (Toolwatch-Agent header)")
    r.add_argument("--model", help="only this model")
    r.add_argument("--abandon", help="idle time after which a session waiting for tool results is abandoned (10m)")
    r.add_argument("--cascade-run", type=int, help="consecutive failed steps that make a cascade (3)")
    ss = sub.add_parser("sessions", help="sessions in a window, newest first")
    _reading(ss)
    _window(ss)
    ss.add_argument("--failed", action="store_true", help="only failed, abandoned or cascade sessions")
    ss.add_argument("--model", help="only sessions of this model")
    ss.add_argument("--agent", help="only this agent")
    ss.add_argument("--last", type=int, help="at most this many (50)")
    rc = sub.add_parser("reclassify", help="re-apply the tool-result outcome rules to stored results")
    _common(rc)
    rc.add_argument("--server", help="ask this running toolwatch to do it (http://host:port)")
    rc.add_argument("--since", default="30d", help="results recorded in this window (30d)")
    one = sub.add_parser("session", help="one session's timeline, step by step")
    _reading(one)
    one.add_argument("session", help="a session as listed by `toolwatch sessions` (or a Toolwatch-Session-Id)")
    _window(one, default_since="7d")
    return ap


def _window(p: argparse.ArgumentParser, default_since: str = "24h") -> None:
    p.add_argument(
        "--since", default=default_since, help=f"window start: a duration back from --until ({default_since})"
    )
    p.add_argument("--until", help="window end: ISO time (default now)")
    p.add_argument("--abandon", help="idle time after which a session waiting for tool results is abandoned (10m)")
    p.add_argument("--cascade-run", type=int, help="consecutive failed steps that make a cascade (3)")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: getattr(args, k, None) for k in ("host", "port", "store", "spool")}
    return load_settings(args.config, overrides=overrides)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = _settings(args)
        if args.command == "serve":
            return _serve(settings)
        if args.command == "migrate":
            return _migrate(settings)
        if args.command == "calls":
            if not 1 <= args.last <= 10_000:
                raise ConfigError("--last must be between 1 and 10000")
            rows = read_api(settings, args.server, "calls", "recent_calls", {"last": args.last})
            print(json.dumps(rows, indent=2) if args.json else format_calls(rows))
            return 0
        if args.command == "reclassify":
            done = _reclassify(settings, args.server, args.since)
            print(f"examined {done['examined']} result(s), changed {done['changed']}")
            return 0
        if args.command in ("report", "sessions", "session"):
            rows = analyze(settings, args)
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                print(
                    {"report": format_report, "sessions": format_sessions, "session": format_session}[args.command](
                        rows
                    )
                )
            return 0
    except ToolwatchError as e:
        print(f"toolwatch: {e}", file=sys.stderr)
        return 2
    return 2


def _serve(settings: Settings) -> int:
    from toolwatch.serve import serve

    setup_logging(settings.log_level, "proxy")
    try:
        import uvloop

        return uvloop.run(serve(settings))
    except ImportError:
        return asyncio.run(serve(settings))


def _migrate(settings: Settings) -> int:
    from toolwatch.store.client import open_client
    from toolwatch.store.migrate import migrate

    client = open_client(settings.store, settings.database)
    try:
        ran = migrate(client, settings.ttl_days, settings.body_ttl_days)
    finally:
        client.close()
    print(f"applied {len(ran)} migration(s)" + "".join(f"\n  {m.version:04d} {m.name}" for m in ran))
    return 0


def _reclassify(settings: Settings, server: str | None, since: str) -> dict[str, int]:
    """In the store when no server holds it, else in the running server's recorder (its rules)."""
    from toolwatch.analyzers.params import ParamError, window

    try:
        start, _ = window(since, None)
    except ParamError as e:
        raise ConfigError(str(e)) from e
    query = urllib.parse.urlencode({"since": start.isoformat()})
    if server:
        return http_post(f"{server.rstrip('/')}/_toolwatch/api/reclassify?{query}")  # type: ignore[no-any-return]
    from toolwatch.recorder.outcomes import Classifier
    from toolwatch.store.client import open_client
    from toolwatch.store.migrate import migrate
    from toolwatch.store.reclassify import reclassify

    try:
        client = open_client(settings.store, settings.database)
    except StoreLockedError:
        return http_post(f"{_server_url(settings, None)}/_toolwatch/api/reclassify?{query}")  # type: ignore[no-any-return]
    try:
        migrate(client, settings.ttl_days, settings.body_ttl_days)
        done = reclassify(client, Classifier.from_settings(settings.outcome_rules), start)
    finally:
        client.close()
    return {"examined": done.examined, "changed": done.changed}


def _server_url(settings: Settings, explicit: str | None) -> str:
    if explicit:
        return explicit.rstrip("/")
    from toolwatch.serve import server_file

    try:
        return str(json.loads(server_file(settings).read_text())["url"])
    except (OSError, ValueError, KeyError):
        return f"http://{settings.host}:{settings.port}"


def http_post(url: str) -> Any:
    return http_get(url, method="POST")


def http_get(url: str, method: str = "GET") -> Any:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=600) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:500]
        raise StoreError(f"{url.split('?')[0]} answered {e.code}: {detail}") from e
    except (urllib.error.URLError, OSError) as e:
        raise StoreError(f"cannot reach the toolwatch server at {url.split('?')[0]}: {e}") from e


def read_api(
    settings: Settings,
    server: str | None,
    api_name: str,
    sql_name: str,
    params: dict[str, Any],
    api_params: dict[str, Any] | None = None,
) -> Any:
    """Rows from the running server's read API, or from the store itself when no server holds it.

    ``params`` are bound to the analyzer's SQL; ``api_params`` (default: the same) go in the query string.
    """
    query = urllib.parse.urlencode(api_params if api_params is not None else params)
    if server:
        return http_get(f"{server.rstrip('/')}/_toolwatch/api/{api_name}?{query}")
    from toolwatch.analyzers import runner
    from toolwatch.store.client import open_client

    try:
        client = open_client(settings.store, settings.database)
    except StoreLockedError:
        return http_get(f"{_server_url(settings, None)}/_toolwatch/api/{api_name}?{query}")
    try:
        from toolwatch.store.migrate import migrate

        migrate(client, settings.ttl_days, settings.body_ttl_days)
        return runner.run(client, sql_name, **params)
    finally:
        client.close()


def analyze(settings: Settings, args: argparse.Namespace) -> Any:
    """Run an analyzer with the flags given; through the server when it holds the store."""
    from toolwatch.analyzers.params import ParamError, analyzer_params

    names = {
        "report": ("since", "until", "agent", "model", "abandon", "cascade_run"),
        "sessions": ("since", "until", "agent", "model", "abandon", "cascade_run", "failed", "last"),
        "session": ("session", "since", "until", "abandon", "cascade_run"),
    }[args.command]
    raw = {k: getattr(args, k) for k in names if getattr(args, k, None) not in (None, False)}
    try:
        params = analyzer_params(args.command, raw)
    except ParamError as e:
        raise ConfigError(str(e)) from e
    # send the resolved window so "now" means the same instant on both sides
    api = {**raw, "since": params["since"].isoformat(), "until": params["until"].isoformat()}
    return read_api(settings, args.server, args.command, args.command, params, api_params=api)


def format_calls(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no calls recorded yet"
    lines = []
    for r in rows:
        tokens = f"in={r.get('input_tokens')} out={r.get('output_tokens')}"
        lines.append(
            f"{r['ts'][:23]}  {r['upstream']}/{r['model'] or '?'}  {r['status']} {r['outcome']}"
            f"  finish={r.get('finish_reason')}  {tokens}  {r['latency_ms']:.0f}ms"
            + (f"  session={r['session_id']}" if r.get("session_id") else "")
            + (f"  [{r['parse_status']}]" if r.get("parse_status") not in ("ok", "not_parsed") else "")
        )
        for index, call_id, name, raw, valid in r.get("tool_calls") or []:
            args = raw if len(raw) <= 120 else raw[:117] + "..."
            lines.append(
                f"    -> #{index} {name}({args}) id={call_id}" + ("" if valid else "  [arguments not a JSON object]")
            )
    return "\n".join(lines)


REPORT_COLUMNS = (
    ("model", "model", "{}"),
    ("calls", "llm_calls", "{}"),
    ("tool calls", "tool_calls", "{}"),
    ("malformed", "malformed_rate", "{:.1%}"),
    ("tool err", "tool_error_rate", "{:.1%}"),
    ("sessions", "sessions", "{}"),
    ("success", "session_success_rate", "{:.1%}"),
    ("recovery", "recovery_rate", "{:.1%}"),
    ("cascade", "cascade_rate", "{:.1%}"),
    ("loops", "loop_sessions", "{}"),
    ("http err", "http_error_rate", "{:.1%}"),
    ("p50 ms", "latency_p50_ms", "{:.0f}"),
    ("p95 ms", "latency_p95_ms", "{:.0f}"),
)


def format_report(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no calls in this window"
    table = [[h for h, _, _ in REPORT_COLUMNS]]
    for r in rows:
        table.append(["-" if r.get(k) is None else f.format(r[k]) for _, k, f in REPORT_COLUMNS])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table)


def format_sessions(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no sessions in this window"
    lines = []
    for r in rows:
        flags = ", ".join(f for f, on in (("cascade", r["cascade"]), ("loop", r["loop"])) if on)
        lines.append(
            f"{r['session']}  {r['model']}  {r['outcome']}  steps={r['steps']}  failed={r['failed_steps']}"
            f"  unrecovered={r['unrecovered_steps']}  last={r['last_ts'][:19]}" + (f"  [{flags}]" if flags else "")
        )
    return "\n".join(lines)


def format_session(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no such session in this window"
    lines = []
    first_failure = next((i for i, r in enumerate(rows) if r["failed"]), None)
    for i, r in enumerate(rows):
        mark = ""
        if r["failed"]:
            mark = "  <- FIRST FAILURE" if i == first_failure else "  <- failed"
            mark += " (recovered later)" if r["recovered"] else " (never recovered)"
        kind = "final answer" if r["final_answer"] else f"finish={r['finish_reason']}"
        lines.append(f"step {i + 1}  {r['ts'][11:23]}  {r['model']}  {r['status']} {r['outcome']}  {kind}{mark}")
        for _index, call_id, name, raw, malformed, outcome, rule in r.get("tool_calls") or []:
            args = raw if len(raw) <= 100 else raw[:97] + "..."
            bad = f" MALFORMED:{malformed}" if malformed else ""
            why = f" ({rule})" if rule else ""
            lines.append(f"    -> {name}({args}) id={call_id}{bad} => {outcome}{why}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
