"""Reading the figures from the store they were asked for: through ``--server`` when given; else through
the ``serve`` that holds that store (found by its lock and the address it left in the store, see
``store/place.py``); else from the store itself. A store that does not exist is an error: a reading
command never creates one, and never prints another store's figures.

Errors are ``ToolwatchError``s whose message is the whole story; ``Missing`` is a lookup that found nothing
(the CLI's exit 1), whether the store said so or the server (404).
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from clickhouse_connect.driver.client import Client

from toolwatch.analyzers.cost import price_table
from toolwatch.analyzers.params import ParamError, analyzer_params, window
from toolwatch.analyzers.views import Context, NotFound, view
from toolwatch.schemas.errors import ConfigError, StoreError, ToolwatchError
from toolwatch.schemas.settings import Settings
from toolwatch.spool.locks import FileLock
from toolwatch.store.client import open_client
from toolwatch.store.migrate import migrate
from toolwatch.store.place import embedded_store_exists, owner_dir, running_server, store_dir

READER_LOCK = "toolwatch.readers.lock"
READER_WAIT = 60.0  # seconds a reading command waits for another one to finish with the store

# analyzer -> the parameters it takes from the command line
ANALYZER_FLAGS: dict[str, tuple[str, ...]] = {
    "report": ("since", "until", "agent", "model", "abandon", "cascade_run"),
    "sessions": ("since", "until", "agent", "model", "abandon", "cascade_run", "failed", "last"),
    "session": ("session", "since", "until", "abandon", "cascade_run"),
    "alerts": ("open", "agent", "kind", "since", "last"),
    "check": ("agent", "since"),
    "compare": ("agent", "before", "after", "since", "until"),
    "silences": (),
}


class Missing(ToolwatchError):
    """What was asked for does not exist (an alert id, a session in the window)."""


def http_get(url: str, method: str = "GET", token: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if method != "GET":
        headers["Toolwatch-Request"] = "1"  # a write, asked for on purpose (see proxy/access.py)
    where = url.split("?")[0]
    try:
        request = urllib.request.Request(url, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=600) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        detail = _error_text(e.read())
        if e.code == 404 and "/_toolwatch/api/" in where:
            raise Missing(detail) from e
        if e.code == 400:
            raise ConfigError(detail) from e
        hint = " (set TOOLWATCH_ADMIN_TOKEN to the server's admin_token)" if e.code in (401, 403) else ""
        raise StoreError(f"the toolwatch server at {where} answered {e.code}: {detail}{hint}") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise StoreError(
            f"cannot reach the toolwatch server at {where}: {reason}; is it running? (--server, or the store's own)"
        ) from e


def _error_text(body: bytes) -> str:
    """The ``error`` of the read API's JSON answers, else the start of the body."""
    text = body.decode(errors="replace")
    try:
        found = json.loads(text)
    except ValueError:
        return text.strip()[:500] or "no details"
    return str(found.get("error", text))[:500] if isinstance(found, dict) else text[:500]


def store_problem(settings: Settings) -> str | None:
    """Why an embedded store cannot be created where the settings put it (a file in the way, a folder
    that cannot be written), or None."""
    folder = store_dir(settings)
    if folder is None:
        return None
    for path in (folder, *folder.parents):
        if path.exists():
            if not path.is_dir():
                return f"{path} is a file, not a folder"
            if path != folder and not os.access(path, os.W_OK | os.X_OK):
                return f"{path} is not writable"
            return None
    return None


def http_post(url: str, token: str = "") -> Any:
    return http_get(url, method="POST", token=token)


def read_api(
    settings: Settings,
    server: str | None,
    api_name: str,
    sql_name: str,
    params: dict[str, Any],
    api_params: dict[str, Any] | None = None,
) -> Any:
    """Rows from the running server's read API, or from the store itself when no server holds it.

    ``params`` are bound to the analyzer's SQL; ``api_params`` (default: the same) go in the query string.
    """
    query = urllib.parse.urlencode(api_params if api_params is not None else params)
    url = server.rstrip("/") if server else running_server(settings)
    if url:
        return http_get(f"{url}/_toolwatch/api/{api_name}?{query}", token=settings.admin_token)
    with open_store(settings) as client:
        try:
            prices = {m: p.model_dump() for m, p in settings.prices.items()}
            return view(client, sql_name, params, Context(price_table(prices)))
        except NotFound as e:
            raise Missing(str(e)) from e


@contextlib.contextmanager
def open_store(settings: Settings) -> Iterator[Client]:
    """The store itself, for a reader: it must exist; readers take turns on an embedded store."""
    folder = store_dir(settings)
    lock = FileLock(owner_dir(settings) / READER_LOCK) if folder is not None else None
    if folder is not None:
        if not embedded_store_exists(folder):
            why = store_problem(settings)
            raise StoreError(
                f"no toolwatch store at {folder}"
                + (f" ({why})" if why else "")
                + ": run `toolwatch serve` first, or point --store (or TOOLWATCH_STORE) at an existing store"
            )
        assert lock is not None
        if not lock.acquire(timeout=READER_WAIT):
            raise StoreError(f"another toolwatch command has been reading the store at {folder} for too long")
    try:
        with quiet_stderr():
            client = open_client(settings.store, settings.database, create=False)
        try:
            migrate(client, settings.ttl_days, settings.body_ttl_days)
            yield client
        finally:
            client.close()
    finally:
        if lock is not None:
            lock.release()


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """The embedded engine writes its own lock complaints to the standard error; readers say it better."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def analyze(settings: Settings, server: str | None, name: str, flags: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Run an analyzer with the command line's flags; through the server when it holds the store. Returns
    its answer and the parameters it ran with (the window resolved)."""
    raw = {k: flags[k] for k in ANALYZER_FLAGS[name] if flags.get(k) is not None and flags[k] is not False}
    try:
        params = analyzer_params(name, raw)
    except ParamError as e:
        raise ConfigError(str(e)) from e
    # send the resolved window so "now" means the same instant on both sides
    resolved: dict[str, Any] = {k: params[k].isoformat() for k in ("since", "until") if k in params}
    api = {**raw, **resolved}
    return read_api(settings, server, name, name, params, api_params=api), params


def alert_action(settings: Settings, server: str | None, action: str, args: dict[str, str]) -> dict[str, Any]:
    """Acknowledge, silence or unsilence: through the server that holds the store, else in the store."""
    from toolwatch.analyzers.alerting import NoSuchAlert, alert_write

    args = {k: v for k, v in args.items() if v}
    try:
        fn = alert_write(action, args)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    url = server.rstrip("/") if server else running_server(settings)
    if url:
        query = urllib.parse.urlencode(args)
        return http_post(f"{url}/_toolwatch/api/alerts/{action}?{query}", settings.admin_token)  # type: ignore[no-any-return]
    with open_store(settings) as client:
        try:
            return fn(client)
        except NoSuchAlert as e:
            raise Missing(str(e)) from e
        except ValueError as e:
            raise ConfigError(str(e)) from e


def reclassify(settings: Settings, server: str | None, since: str) -> dict[str, Any]:
    """In the store when no server holds it, else in the running server's recorder (its rules)."""
    from toolwatch.recorder.outcomes import Classifier
    from toolwatch.recorder.reclassify import reclassify as run

    try:
        start, _ = window(since, None)
    except ParamError as e:
        raise ConfigError(str(e)) from e
    query = urllib.parse.urlencode({"since": start.isoformat()})
    url = server.rstrip("/") if server else running_server(settings)
    if url:
        done = http_post(f"{url}/_toolwatch/api/reclassify?{query}", settings.admin_token)
        return {**done, "since": start.isoformat()}
    with open_store(settings) as client:
        ran = run(client, Classifier.from_settings(settings.outcome_rules), start)
    return {"examined": ran.examined, "changed": ran.changed, "since": start.isoformat()}


def delete(settings: Settings, server: str | None, user: str | None, session: str | None) -> dict[str, Any]:
    """Remove a user's or a session's calls from every table: in the running server when it holds the
    store, else in the store itself."""
    from toolwatch.analyzers.erase import erase

    url = server.rstrip("/") if server else running_server(settings)
    if url:
        query = urllib.parse.urlencode({"user": user} if user is not None else {"session": session})
        return http_post(f"{url}/_toolwatch/api/delete?{query}", settings.admin_token)  # type: ignore[no-any-return]
    with open_store(settings) as client:
        done = erase(client, user=user, session=session)
    return {"calls": done.calls, "rows": done.rows}
