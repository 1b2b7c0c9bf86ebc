"""How toolwatch's own errors reach the person at the terminal: one line on standard error, and an exit
code. The exception tree itself lives in ``toolwatch.schemas.errors``, where every stage can raise it.

Exit codes: 0 ok, 1 a finding (a lookup that found nothing, a regression for ``check``), 2 a usage or
runtime error.
"""

from __future__ import annotations

import sys

from toolwatch.schemas.errors import ToolwatchError

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_ERROR = 2


def fail(error: ToolwatchError) -> int:
    """Say what went wrong in one line and return the exit code for it."""
    print(f"toolwatch: {error}", file=sys.stderr)
    return EXIT_ERROR
