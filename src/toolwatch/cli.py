"""The ``toolwatch`` command line: dispatch and output. The work is done by the stages; the
arguments and their help are in ``cli_args.py``.

Reading commands open the store themselves only when no running toolwatch holds it; otherwise they
read through that server's ``/_toolwatch/api/`` (``--server``, else the one recorded beside the store).
Every command but ``serve`` takes ``--json``; the exit codes are in ``toolwatch.errors``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
from collections.abc import Callable
from typing import Any

from toolwatch import errors
from toolwatch.cli_args import LAST_MAX, parser
from toolwatch.errors import EXIT_ERROR, EXIT_FINDING, EXIT_OK, fail
from toolwatch.logs import setup_logging
from toolwatch.schemas.errors import ConfigError, ToolwatchError
from toolwatch.schemas.settings import Settings, load_settings


class Usage(Exception):
    """A mistake in the command line found after parsing: shown with the command's usage, exit 2."""


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # the store, the spool and every file toolwatch writes are its user's alone
    ap = parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:  # usage errors, --help, --version
        return e.code if isinstance(e.code, int) else EXIT_ERROR
    if args.command is None:
        ap.print_help()
        return EXIT_ERROR
    try:
        _check(args)
        return _run(args)
    except Usage as e:
        try:
            args.commands[args.command].error(str(e))
        except SystemExit as exit:
            return exit.code if isinstance(exit.code, int) else EXIT_ERROR
    except KeyboardInterrupt:
        return errors.EXIT_INTERRUPTED
    except BrokenPipeError:
        errors.quiet_stdout()
        return EXIT_OK
    except Exception as e:
        if errors.debug_requested(args.debug):
            raise
        return _failure(e)
    return EXIT_ERROR


def _failure(e: Exception) -> int:
    if isinstance(e, ToolwatchError):
        from toolwatch.analyzers.client import Missing

        return fail(_flagged(str(e)), EXIT_FINDING if isinstance(e, Missing) else EXIT_ERROR)
    if isinstance(e, OSError):
        return errors.os_error(e)
    return errors.unexpected(e)


PARAMS = ("since", "until", "abandon", "cascade_run", "last", "kind")


def _flagged(message: str) -> str:
    """The analyzers name their parameters (``since``); on the command line they are flags (``--since``)."""
    message = re.sub(rf"^({'|'.join(PARAMS)})\b", lambda m: "--" + m.group(1).replace("_", "-"), message)
    return message.replace(" must be before until", " must be before --until")


def _check(args: argparse.Namespace) -> None:
    last = getattr(args, "last", None)
    if last is not None and not 1 <= last <= LAST_MAX:
        raise Usage(f"--last must be between 1 and {LAST_MAX}, got {last}")
    if args.command == "alerts":
        if args.action in ("ack", "unsilence") and not args.id:
            raise Usage(f"alerts {args.action} needs an id (`toolwatch alerts` lists them)")
        if args.action == "silence" and not (args.id or args.agent):
            raise Usage("silence an alert (its id) or an agent (--agent NAME), --for a duration")
        if args.action == "silence" and not args.duration:
            raise Usage("a silence needs --for, a duration like 2h")
    if args.command == "delete" and not (args.user or args.session):
        raise Usage("--user or --session needs a value")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: getattr(args, k, None) for k in ("host", "port", "store", "spool", "workers")}
    settings = load_settings(args.config, overrides=overrides)
    if settings.store_origin == "legacy":
        print(
            f"toolwatch: using the store found in this folder, {settings.store.removeprefix('chdb://')}"
            " (--store or TOOLWATCH_STORE chooses another)",
            file=sys.stderr,
        )
    return settings


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        return _demo(args)
    settings = _settings(args)
    if args.command == "serve":
        return _serve(settings, args)
    if args.command == "migrate":
        return _migrate(settings, args)
    if args.command == "deadletter":
        return _deadletter(settings, args)
    if args.command == "alerts":
        return _alerts(settings, args)
    return READERS[args.command](settings, args)


def _color() -> bool:
    if os.environ.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _width() -> int | None:
    """The terminal's width when the text is coloured for one, else None: a pipe's lines are never cut."""
    return shutil.get_terminal_size().columns if _color() else None


def _show(args: argparse.Namespace, data: Any, text: Callable[[Any], Any]) -> None:
    """``--json``: the data; else the text for people, coloured on a terminal."""
    from toolwatch.analyzers import format

    if getattr(args, "json", False):
        print(format.as_json(data), flush=True)
    else:
        print(format.render(text(data), _color(), _width()), flush=True)


def _calls(settings: Settings, args: argparse.Namespace) -> int:
    from toolwatch.analyzers import client, format

    rows = client.read_api(settings, args.server, "calls", "recent_calls", {"last": args.last or 20})
    _show(args, rows, format.format_calls)
    return EXIT_OK


def _analyzed(settings: Settings, args: argparse.Namespace) -> int:
    from toolwatch.analyzers import client, format

    found, params = client.analyze(settings, args.server, args.command, vars(args))
    window = format.span(params["since"], params["until"]) if "until" in params else ""
    if args.command == "report":
        filters = "  ".join(f"{k} {params[k]}" for k in ("agent", "model") if params.get(k))
        _show(args, found, lambda rows: format.format_report(rows, window, filters, _width()))
    elif args.command == "sessions":
        _show(args, found, lambda rows: format.format_sessions(rows, window and f"from {window}"))
    elif args.command == "session":
        if not found:
            raise client.Missing(
                f"no session {args.session!r} from {window}: `toolwatch sessions` lists them (or --since 30d)"
            )
        _show(args, found, format.format_session)
    elif args.command == "check":
        _show(args, found, format.format_check)
        return EXIT_FINDING if found["open"] else EXIT_OK
    else:
        _show(args, found, format.format_compare)
    return EXIT_OK


def _reclassify(settings: Settings, args: argparse.Namespace) -> int:
    from toolwatch.analyzers import client

    done = client.reclassify(settings, args.server, args.since)
    _show(args, done, lambda d: f"examined {d['examined']} result(s), changed {d['changed']}")
    return EXIT_OK


def _delete(settings: Settings, args: argparse.Namespace) -> int:
    from toolwatch.analyzers import client

    done = client.delete(settings, args.server, args.user, args.session)

    def text(d: dict[str, Any]) -> str:
        if not d["calls"]:
            return "nothing to delete: no calls for " + (f"user {args.user!r}" if args.user else f"{args.session!r}")
        return f"deleted {d['calls']} call(s): " + ", ".join(f"{t} {n}" for t, n in d["rows"].items())

    _show(args, done, text)
    return EXIT_OK


READERS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "calls": _calls,
    "report": _analyzed,
    "sessions": _analyzed,
    "session": _analyzed,
    "check": _analyzed,
    "compare": _analyzed,
    "reclassify": _reclassify,
    "delete": _delete,
}


def _alerts(settings: Settings, args: argparse.Namespace) -> int:
    from toolwatch.analyzers import client, format

    if args.action in ("list", "silences"):
        found, _ = client.analyze(settings, args.server, "alerts" if args.action == "list" else "silences", vars(args))
        _show(args, found, format.format_alerts if args.action == "list" else format.format_silences)
        return EXIT_OK
    query = {"id": args.id or "", "by": args.by, "agent": args.agent or "", "kind": args.kind or ""}
    if args.action == "silence":
        query.update({"for": args.duration or "", "comment": args.comment})
    done = client.alert_action(settings, args.server, args.action, query)
    if args.action == "ack":
        _show(args, done, lambda d: f"acknowledged {d['id']} ({d['kind']} on {d['agent']}, {d['state']})")
    elif args.action == "silence":
        _show(args, done, lambda d: f"silence {d['id']} until {format.when(d['until'])}")
    else:
        _show(args, done, lambda d: f"silence {d['id']} ended")
    return EXIT_OK


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from toolwatch.serve import serve

    setup_logging(settings.log_level, "proxy")
    debug = errors.debug_requested(args.debug)
    try:
        import uvloop

        return uvloop.run(serve(settings, debug=debug))
    except ImportError:
        return asyncio.run(serve(settings, debug=debug))


def _deadletter(settings: Settings, args: argparse.Namespace) -> int:
    from toolwatch.spool.deadletter import DeadLetters

    letters = DeadLetters(settings.spool_path)
    if args.action == "replay":
        replayed, kept = letters.replay()
        done = {"replayed": replayed, "kept": [str(k.path) for k in kept]}
        said = f"put {replayed} frame(s) back into the spool; {len(kept)} dead letter(s) cannot be replayed"
        _show(args, done, lambda _: said)
        return EXIT_OK
    found = letters.all()

    def text(_: Any) -> str:
        if not found:
            return f"no dead letters in {letters.directory}"
        return "\n".join(f"{d.path.name}  {d.header.get('stage', '?')}  {d.size} bytes  {d.error}" for d in found)

    _show(args, [{"file": str(d.path), "bytes": d.size, **d.header} for d in found], text)
    return EXIT_OK


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
                as_json=args.json,
            )
        )
    except KeyboardInterrupt:
        return EXIT_OK


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from toolwatch.analyzers.client import store_problem
    from toolwatch.store.client import open_client
    from toolwatch.store.migrate import migrate

    problem = store_problem(settings)
    if problem:
        raise ConfigError(
            f"cannot create the store at {settings.store.removeprefix('chdb://')}: {problem};"
            " point --store (or TOOLWATCH_STORE) at a folder you can write"
        )
    client = open_client(settings.store, settings.database)
    try:
        ran = migrate(client, settings.ttl_days, settings.body_ttl_days)
    finally:
        client.close()
    done = {"applied": [{"version": m.version, "name": m.name} for m in ran]}
    said = f"applied {len(ran)} migration(s)" + "".join(f"\n  {m.version:04d} {m.name}" for m in ran)
    _show(args, done, lambda _: said)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
