"""Entry point of the recorder process. A stop signal that arrives while it is still starting is kept,
so a recorder told to stop early still drains the spool before it exits."""

import signal
import threading

EARLY_STOP = threading.Event()
for _sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(_sig, lambda *_: EARLY_STOP.set())

from toolwatch.recorder.main import main  # noqa: E402 - after the handlers, on purpose

raise SystemExit(main(EARLY_STOP))
