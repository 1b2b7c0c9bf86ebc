"""How toolwatch talks on standard error: log records, one line per event (proxy and recorder), and
``say``, the plain lines ``serve`` addresses to the person who started it (what it waits for while it
stops, and how that ended)."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str, process: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def say(message: str) -> None:
    """One line for the person at the terminal, ``toolwatch: ...``; quiet with ``log_level`` warning or
    error, as the rest of what serve says on the way."""
    if logging.getLogger().isEnabledFor(logging.INFO):
        try:
            print(f"toolwatch: {message}", file=sys.stderr, flush=True)
        except (OSError, ValueError):  # standard error is gone (a closed pipe): nobody to tell
            pass


def size(n: int) -> str:
    """A byte count as people read it: 512 B, 3.4 KiB, 1.2 MiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
