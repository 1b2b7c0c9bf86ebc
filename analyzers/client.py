"""Reading the figures from wherever they are: the store itself when no toolwatch holds it, else the read
API of the running server that does (``--server``, else the one whose URL it left beside the store).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from toolwatch.analyzers import runner
from toolwatch.analyzers.params import ParamError, analyzer_params, window
from toolwatch.schemas.errors import ConfigError, StoreError, StoreLockedError
from toolwatch.schemas.settings import Settings, chdb_path
from toolwatch.store.client import open_client
from toolwatch.store.migrate import migrate

# analyzer -> the parameters it takes from the command line
ANALYZER_FLAGS: dict[str, tuple[str, ...]] = {
    "report": ("since", "until", "agent", "model", "abandon", "cascade_run"),
    "sessions": ("since", "until", "agent", "model", "abandon", "cascade_run", "failed", "last"),
    "session": ("session", "since", "until", "abandon", "cascade_run"),
}


def server_file(settings: Settings) -> Path:
    """Where a running server leaves its URL: beside the embedded store it holds (else in the spool), so
    a reading command that finds the store locked knows whom to ask."""
    path = chdb_path(settings.store)
    if path is not None:
        p = Path(path)
        return p.with_name(p.name + ".server.json")
    return settings.spool_path / "server.json"


def server_url(settings: Settings, explicit: str | None) -> str:
    if explicit:
        return explicit.rstrip("/")
    try:
        return str(json.loads(server_file(settings).read_text())["url"])
    except (OSError, ValueError, KeyError):
        return f"http://{settings.host}:{settings.port}"


def http_get(url: str, method: str = "GET") -> Any:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=600) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:500]
        raise StoreError(f"{url.split('?')[0]} answered {e.code}: {detail}") from e
    except (urllib.error.URLError, OSError) as e:
        raise StoreError(f"cannot reach the toolwatch server at {url.split('?')[0]}: {e}") from e


def http_post(url: str) -> Any:
    return http_get(url, method="POST")


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
    if server:
        return http_get(f"{server.rstrip('/')}/_toolwatch/api/{api_name}?{query}")
    try:
        client = open_client(settings.store, settings.database)
    except StoreLockedError:
        return http_get(f"{server_url(settings, None)}/_toolwatch/api/{api_name}?{query}")
    try:
        migrate(client, settings.ttl_days, settings.body_ttl_days)
        return runner.run(client, sql_name, **params)
    finally:
        client.close()


def analyze(settings: Settings, server: str | None, name: str, flags: dict[str, Any]) -> Any:
    """Run an analyzer with the command line's flags; through the server when it holds the store."""
    raw = {k: flags.get(k) for k in ANALYZER_FLAGS[name] if flags.get(k) not in (None, False)}
    try:
        params = analyzer_params(name, raw)
    except ParamError as e:
        raise ConfigError(str(e)) from e
    # send the resolved window so "now" means the same instant on both sides
    api = {**raw, "since": params["since"].isoformat(), "until": params["until"].isoformat()}
    return read_api(settings, server, name, name, params, api_params=api)


def reclassify(settings: Settings, server: str | None, since: str) -> dict[str, int]:
    """In the store when no server holds it, else in the running server's recorder (its rules)."""
    from toolwatch.recorder.outcomes import Classifier
    from toolwatch.recorder.reclassify import reclassify as run

    try:
        start, _ = window(since, None)
    except ParamError as e:
        raise ConfigError(str(e)) from e
    query = urllib.parse.urlencode({"since": start.isoformat()})
    if server:
        return http_post(f"{server.rstrip('/')}/_toolwatch/api/reclassify?{query}")  # type: ignore[no-any-return]
    try:
        client = open_client(settings.store, settings.database)
    except StoreLockedError:
        return http_post(f"{server_url(settings, None)}/_toolwatch/api/reclassify?{query}")  # type: ignore[no-any-return]
    try:
        migrate(client, settings.ttl_days, settings.body_ttl_days)
        done = run(client, Classifier.from_settings(settings.outcome_rules), start)
    finally:
        client.close()
    return {"examined": done.examined, "changed": done.changed}
