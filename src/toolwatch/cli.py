"""The ``toolwatch`` command line: argument parsing and dispatch. The work is done by the stages.

Reading commands open the store themselves only when no running toolwatch holds it; otherwise they
read through that server's ``/_toolwatch/api/`` (``--server``, else the one recorded beside the store).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

from toolwatch.errors import fail
from toolwatch.logs import setup_logging
from toolwatch.schemas.errors import ConfigError, ToolwatchError
from toolwatch.schemas.settings import Settings, load_settings


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
    d = sub.add_parser(
        "demo", help="see toolwatch work with live data: scripted agents, upstream and a throwaway store"
    )
    d.add_argument("--port", type=int, default=0, help="listen port for the demo's toolwatch (default: a free one)")
    d.add_argument("--seed", type=int, default=7, help="the scripted models' and agents' seed (7)")
    d.add_argument("--sessions", type=int, help="stop after this many agent sessions (default: until Ctrl-C)")
    d.add_argument("--duration", type=float, help="stop starting sessions after this many seconds")
    d.add_argument("--keep", help="keep the store in this folder (default: a temporary one, removed at the end)")
    d.add_argument("--latency", type=float, default=1.0, help="scale of the scripted answer times (0: at once)")
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
    dl = sub.add_parser("deadletter", help="what could not be recorded: list it, or put it back into the spool")
    _common(dl)
    dl.add_argument("action", choices=("list", "replay"), help="list the dead letters, or replay the whole frames")
    dl.add_argument("--spool", help="spool directory (default beside the embedded store)")
    dl.add_argument("--json", action="store_true", help="print JSON")
    de = sub.add_parser("delete", help="remove a user's or a session's calls from every table (data protection)")
    _common(de)
    de.add_argument("--server", help="ask this running toolwatch to do it (http://host:port)")
    who = de.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a Toolwatch-User-Id")
    who.add_argument("--session", help="a session as listed by `toolwatch sessions` (or a Toolwatch-Session-Id)")
    de.add_argument("--json", action="store_true", help="print JSON")
    al = sub.add_parser("alerts", help="regression alerts: list them, acknowledge, silence")
    _reading(al)
    al.add_argument(
        "action",
        nargs="?",
        default="list",
        choices=("list", "ack", "silence", "unsilence", "silences"),
        help="list (default), ack ID, silence ID|--agent NAME --for 2h, unsilence SILENCE_ID, silences",
    )
    al.add_argument("id", nargs="?", help="an alert id (ack, silence) or a silence id (unsilence)")
    al.add_argument("--open", action="store_true", help="only open alerts")
    al.add_argument("--agent", help="only this agent's alerts (list), or silence this agent's alerts")
    al.add_argument("--kind", help="switch_regression, drift or threshold")
    al.add_argument("--since", help="list resolved alerts updated in this window too (7d)")
    al.add_argument("--for", dest="duration", help="how long a silence lasts, e.g. 2h")
    al.add_argument("--by", default=os.environ.get("USER", ""), help="who acknowledges or silences ($USER)")
    al.add_argument("--comment", default="", help="why (silence)")
    ck = sub.add_parser("check", help="for deploy pipelines: exit 1 when a regression alert is open, 0 when none is")
    _reading(ck)
    ck.add_argument("--agent", help="only this agent (Toolwatch-Agent, or upstream:key-fingerprint)")
    ck.add_argument("--since", default="24h", help="alerts opened in this window (24h)")
    cp = sub.add_parser("compare", help="two models on one agent, side by side, with intervals and latency")
    _reading(cp)
    cp.add_argument("--agent", required=True, help="the agent")
    cp.add_argument("--before", required=True, help="the old model")
    cp.add_argument("--after", required=True, help="the new model")
    cp.add_argument("--since", default="7d", help="window start (7d)")
    cp.add_argument("--until", help="window end: ISO time (default now)")
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
    os.umask(0o077)  # the store, the spool and every file toolwatch writes are its user's alone
    args = parser().parse_args(argv)
    try:
        if args.command == "demo":
            return _demo(args)
        settings = _settings(args)
        if args.command == "serve":
            return _serve(settings)
        if args.command == "migrate":
            return _migrate(settings)
        if args.command == "deadletter":
            return _deadletter(settings, args.action, args.json)
        from toolwatch.analyzers import client, format

        if args.command == "calls":
            if not 1 <= args.last <= 10_000:
                raise ConfigError("--last must be between 1 and 10000")
            rows = client.read_api(settings, args.server, "calls", "recent_calls", {"last": args.last})
            print(json.dumps(rows, indent=2) if args.json else format.format_calls(rows))
            return 0
        if args.command == "delete":
            done = client.delete(settings, args.server, args.user, args.session)
            if args.json:
                print(json.dumps(done, indent=2))
            else:
                print(f"deleted {done['calls']} call(s): " + ", ".join(f"{t} {n}" for t, n in done["rows"].items()))
            return 0
        if args.command == "reclassify":
            done = client.reclassify(settings, args.server, args.since)
            print(f"examined {done['examined']} result(s), changed {done['changed']}")
            return 0
        if args.command == "alerts":
            return _alerts(settings, args)
        if args.command == "check":
            try:
                found = client.analyze(settings, args.server, "check", vars(args))
            except ToolwatchError as e:
                fail(e)
                return 2
            print(json.dumps(found, indent=2) if args.json else format.format_check(found))
            return 1 if found["open"] else 0
        if args.command == "compare":
            found = client.analyze(settings, args.server, "compare", vars(args))
            print(json.dumps(found, indent=2) if args.json else format.format_compare(found))
            return 0
        if args.command in ("report", "sessions", "session"):
            rows = client.analyze(settings, args.server, args.command, vars(args))
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                text = {
                    "report": format.format_report,
                    "sessions": format.format_sessions,
                    "session": format.format_session,
                }
                print(text[args.command](rows))
            return 0
    except ToolwatchError as e:
        return fail(e)
    return 2


def _alerts(settings: Settings, args: argparse.Namespace) -> int:
    from toolwatch.analyzers import client, format

    if args.action in ("list", "silences"):
        found = client.analyze(settings, args.server, "alerts" if args.action == "list" else "silences", vars(args))
        text = format.format_alerts if args.action == "list" else format.format_silences
        print(json.dumps(found, indent=2) if args.json else text(found))
        return 0
    if args.action == "silence" and not (args.id or args.agent):
        raise ConfigError("silence an alert (its id) or an agent (--agent NAME), --for a duration")
    if args.action in ("ack", "unsilence") and not args.id:
        raise ConfigError(f"alerts {args.action} needs an id")
    query = {"id": args.id or "", "by": args.by, "agent": args.agent or "", "kind": args.kind or ""}
    if args.action == "silence":
        query.update({"for": args.duration or "", "comment": args.comment})
    done = client.alert_action(settings, args.server, args.action, query)
    if args.json:
        print(json.dumps(done, indent=2))
    elif args.action == "ack":
        print(f"acknowledged {done['id']} ({done['kind']} on {done['agent']}, {done['state']})")
    elif args.action == "silence":
        print(f"silence {done['id']} until {done['until']}")
    else:
        print(f"silence {done['id']} ended")
    return 0


def _serve(settings: Settings) -> int:
    from toolwatch.serve import serve

    setup_logging(settings.log_level, "proxy")
    try:
        import uvloop

        return uvloop.run(serve(settings))
    except ImportError:
        return asyncio.run(serve(settings))


def _deadletter(settings: Settings, action: str, as_json: bool) -> int:
    from toolwatch.spool.deadletter import DeadLetters

    letters = DeadLetters(settings.spool_path)
    if action == "replay":
        replayed, kept = letters.replay()
        if as_json:
            print(json.dumps({"replayed": replayed, "kept": [str(k.path) for k in kept]}, indent=2))
        else:
            print(f"put {replayed} frame(s) back into the spool; {len(kept)} dead letter(s) cannot be replayed")
        return 0
    found = letters.all()
    if as_json:
        print(json.dumps([{"file": str(d.path), "bytes": d.size, **d.header} for d in found], indent=2))
    elif not found:
        print(f"no dead letters in {letters.directory}")
    else:
        for d in found:
            print(f"{d.path.name}  {d.header.get('stage', '?')}  {d.size} bytes  {d.error}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from toolwatch.demo_command import demo

    keep = Path(args.keep).absolute() if args.keep else None
    try:
        return asyncio.run(
            demo(
                port=args.port,
                seed=args.seed,
                sessions=args.sessions,
                duration=args.duration,
                keep=keep,
                latency=args.latency,
            )
        )
    except KeyboardInterrupt:
        return 0


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


if __name__ == "__main__":
    raise SystemExit(main())
