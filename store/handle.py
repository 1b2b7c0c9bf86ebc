"""The recorder's connection to the store: opened lazily, migrated once, shared under one lock.

The store may be missing when the recorder starts (a server down, an embedded path held by another
process): ``client()`` raises StoreError until it can be opened, and the recorder keeps spooling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client

from toolwatch.schemas.errors import StoreError
from toolwatch.schemas.settings import Settings
from toolwatch.store.client import open_client
from toolwatch.store.migrate import migrate

log = logging.getLogger("toolwatch.store")
T = TypeVar("T")


class StoreHandle:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = threading.RLock()
        self._client: Client | None = None
        self.reachable = False
        self.errors = 0
        self.last_error: str | None = None

    def client(self) -> Client:
        with self.lock:
            if self._client is None:
                s = self.settings
                client = open_client(s.store, s.database, **_timeouts(s.store, s.store_timeout))
                try:
                    migrate(client, s.ttl_days, s.body_ttl_days)
                except Exception as e:
                    client.close()
                    raise StoreError(f"migrations failed: {e}") from e
                self._client = client
                self.reachable = True
                log.info("store open: %s (database %s)", s.store.split("@")[-1], s.database)
            return self._client

    def run(self, fn: Callable[[Client], T]) -> T:
        """Run ``fn`` with the client under the store lock, tracking reachability."""
        with self.lock:
            try:
                result = fn(self.client())
            except Exception as e:
                self.note_error(e)
                raise
            self.reachable = True
            return result

    def note_error(self, e: BaseException) -> None:
        self.errors += 1
        self.reachable = False
        self.last_error = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"

    def close(self) -> None:
        with self.lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _timeouts(dsn: str, seconds: float) -> dict[str, Any]:
    if dsn.startswith(("http://", "https://")):
        return {"connect_timeout": seconds, "send_receive_timeout": seconds}
    return {}
