"""Opening the store. ClickHouse is reached only through clickhouse-connect, embedded or server alike.

``chdb:///abs/path`` runs the embedded engine in this process (one path per process, and one process
per path: a second process gets ``StoreLockedError``); ``http(s)://user:pass@host:8123/db`` reaches a
server. Either way the client's default database is the configured one, created if missing.
"""

from __future__ import annotations

import fcntl
import os
import re
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from toolwatch.schemas.errors import StoreError, StoreLockedError
from toolwatch.schemas.settings import chdb_path

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOCKED = ("Cannot lock file", "Another server instance", "already in use by another", "different path")


def _server_database(dsn: str) -> str | None:
    from urllib.parse import urlparse

    path = urlparse(dsn).path.strip("/")
    return path or None


def embedded_locked(path: str) -> bool:
    """True when another process runs the embedded engine on ``path``.

    The engine holds an exclusive flock on ``<path>/status`` while open. Probing it first gives a clear
    error instead of the engine's own failure. Only meaningful in a
    process that has not opened ``path`` itself, so it is asked only after opening failed.
    """
    try:
        fd = os.open(os.path.join(path, "status"), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def open_client(dsn: str, database: str, *, create: bool = True, **kwargs: Any) -> Client:
    """A client whose default database exists and is selected. Raises StoreError (or StoreLockedError).

    ``create=False`` (readers): a database that does not exist is an error, not created."""
    if dsn.startswith(("http://", "https://")):
        database = _server_database(dsn) or database
    if not _IDENT.match(database):
        raise StoreError(f"database name {database!r} is not a plain identifier")
    try:
        admin = clickhouse_connect.get_client(dsn=dsn, **kwargs)
        try:
            if create:
                admin.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
            elif not admin.command("SELECT count() FROM system.databases WHERE name = {db:String}", {"db": database}):
                raise StoreError(f"the store at {_safe(dsn)} has no database {database!r}: nothing recorded there yet")
        finally:
            if not dsn.startswith("chdb://"):
                admin.close()
        client = clickhouse_connect.get_client(dsn=dsn, database=database, **kwargs)
        if dsn.startswith("chdb://"):
            admin.close()
        return client
    except (ClickHouseError, OSError) as e:
        text = str(e)
        path = chdb_path(dsn)
        if any(marker in text for marker in _LOCKED) or (path is not None and embedded_locked(path)):
            raise StoreLockedError(f"the store at {_safe(dsn)} is held by another process") from e
        raise StoreError(f"cannot open the store: {_first_line(text)}") from e


def _safe(dsn: str) -> str:
    """The DSN without its query string, user and password."""
    scheme, sep, rest = dsn.split("?")[0].partition("://")
    return f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else "unknown error"
