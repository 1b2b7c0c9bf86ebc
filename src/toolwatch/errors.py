"""How toolwatch's own errors reach the person at the terminal: one or two lines on standard error (what is
wrong, what to do), and an exit code. A traceback only with ``--debug`` (or ``TOOLWATCH_DEBUG=1``). The
exception tree itself lives in ``toolwatch.schemas.errors``, where every stage can raise it.

Exit codes:

- 0   ok
- 1   a finding: ``check`` found a regression alert open; a lookup found nothing (a session, an alert)
- 2   a usage error (the command's usage is shown), or a runtime error: a store that cannot be opened, a
      server that cannot be reached, an unexpected error
- 130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import os
import sys

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def fail(error: BaseException | str, code: int = EXIT_ERROR) -> int:
    """Say what went wrong (the message says what to do) and return the exit code for it."""
    print(f"toolwatch: {error}", file=sys.stderr, flush=True)
    return code


def unexpected(error: BaseException) -> int:
    """An error toolwatch did not expect: its kind and first line, and how to see more."""
    text = str(error).strip()
    first = text.splitlines()[0][:300] if text else ""
    print(
        f"toolwatch: unexpected error: {type(error).__name__}" + (f": {first}" if first else ""),
        "  run it again with --debug to see the traceback",
        sep="\n",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_ERROR


def os_error(error: OSError) -> int:
    """A file or folder toolwatch could not use."""
    where = f" ({error.filename})" if error.filename else ""
    return fail(f"{error.strerror or error}{where}")


def debug_requested(flag: bool) -> bool:
    return flag or os.environ.get("TOOLWATCH_DEBUG", "") not in ("", "0")


def quiet_stdout() -> None:
    """Standard output's reader went away (``| head``): drop what is left instead of failing on it."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
