"""What every child process of ``serve`` does first (the recorder, the proxy workers): die with serve.

Imported before anything heavy, so it imports nothing but the standard library's os and signal."""

from __future__ import annotations

import os
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """The kernel kills this process when ``serve`` dies, however it dies (Linux); elsewhere the child's own
    check of its parent (standard input closing, or a once-a-second look) stops it."""
    parent = int(os.environ.get("TOOLWATCH_PARENT_PID", "0") or 0)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if parent and os.getppid() != parent:  # the parent died before the request above was made
        os._exit(0)
