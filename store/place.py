"""Where a store is, who holds it, and how to reach the ``serve`` that does.

An embedded store is a folder (``chdb:///abs/path``). A running ``toolwatch serve`` holds an advisory lock
on ``<store>/toolwatch.lock`` for its whole life and leaves its URL in ``<store>/toolwatch.server.json``,
so a reading command finds the server through the store it was asked for, never through a port guessed
from the settings. With a ClickHouse server as the store, both live in the spool folder instead (many
``serve`` may share one server, each with a spool of its own).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import orjson

from toolwatch.schemas.errors import StoreError
from toolwatch.schemas.settings import Settings, chdb_path
from toolwatch.spool.locks import held_elsewhere

LOCK = "toolwatch.lock"
SERVER_FILE = "toolwatch.server.json"
SALT_FILE = "toolwatch.salt"


def store_dir(settings: Settings) -> Path | None:
    """The folder of an embedded store; None for a ClickHouse server."""
    path = chdb_path(settings.store)
    return Path(path) if path is not None else None


def owner_dir(settings: Settings) -> Path:
    """Where the lock and the server file of ``serve`` live: the embedded store, else the spool."""
    return store_dir(settings) or settings.spool_path


def store_lock(settings: Settings) -> Path:
    return owner_dir(settings) / LOCK


def spool_lock(settings: Settings) -> Path:
    return settings.spool_path / LOCK


def server_file(settings: Settings) -> Path:
    return owner_dir(settings) / SERVER_FILE


def embedded_store_exists(path: Path) -> bool:
    """An embedded store that the engine has created (not just a folder someone made)."""
    return (path / "metadata").is_dir() or (path / "data").is_dir()


def running_server(settings: Settings) -> str | None:
    """The URL of the ``serve`` that holds this store, or None when none does.

    Raises StoreError when a serve holds it but has not said where it listens (it is starting)."""
    if not held_elsewhere(store_lock(settings)):
        return None
    try:
        info = orjson.loads(server_file(settings).read_bytes())
        return str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        raise StoreError(
            f"a toolwatch serve holds the store at {owner_dir(settings)} but has not published its address yet;"
            " try again in a moment"
        ) from None


def key_salt(settings: Settings) -> bytes:
    """The salt of API-key fingerprints: ``key_salt`` when set (replicas share it), else a random one made
    once and kept with the store, so fingerprints stay the same across restarts."""
    if settings.key_salt:
        return settings.key_salt.encode()
    path = owner_dir(settings) / SALT_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_hex(32).encode())
    return path.read_bytes().strip()
