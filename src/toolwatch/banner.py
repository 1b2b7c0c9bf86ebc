"""What ``toolwatch serve`` prints on standard output once it listens: where it listens (the first line,
``toolwatch listening on <url>``, which scripts and tests read), where it keeps what it records, what each
agent sets to go through it and where that goes, the dashboard, and how to go on.
"""

from __future__ import annotations

import os
from pathlib import Path

from toolwatch.proxy.route import agent_base
from toolwatch.schemas.settings import Settings, chdb_path

# the variable each API's official SDK reads its base URL from
BASE_URL_VARIABLE = {
    "openai": "OPENAI_BASE_URL",
    "anthropic": "ANTHROPIC_BASE_URL",
    "gemini": "GOOGLE_GEMINI_BASE_URL",
    "azure": "AZURE_OPENAI_ENDPOINT",
}
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def banner(url: str, settings: Settings, environ: dict[str, str] | None = None) -> str:
    """The start banner; ``url`` is the address serve listens on (its port chosen when ``--port 0``)."""
    environ = dict(os.environ) if environ is None else environ
    here = agents_url(url, settings)
    lines = [
        f"toolwatch listening on {url}",
        f"  store      {safe_dsn(settings.store)}",
        f"  spool      {settings.spool_path}",
        *([f"  workers    {settings.workers} proxy processes on this port"] if settings.workers > 1 else []),
        *(
            ["  recording  off (record = false): requests are forwarded, nothing is stored"]
            if not settings.record
            else []
        ),
        f"  dashboard  {here}/_toolwatch/"
        + (" (with the admin token: open /_toolwatch/login?token=... once)" if settings.admin_token else ""),
        "  upstreams  an agent sets the base URL on the left; its requests go on to the right, keys untouched",
    ]
    rows = []
    for name, upstream in settings.upstreams.items():  # the built-in ones first, then the configured
        variable = BASE_URL_VARIABLE.get(upstream.api, "base URL")
        target = upstream.url
        override = f"TOOLWATCH_UPSTREAM_{name.upper().replace('-', '_')}_URL"
        if override in environ:
            target += f" (from {override})"
        rows.append((f"{variable}={here}{agent_base(name, upstream)}", target))
    width = max(len(left) for left, _ in rows) if rows else 0
    lines += [f"    {left.ljust(width)}  -> {right}" for left, right in rows]
    lines.append(
        f"serve keeps this terminal; in another one: {report_command(settings, here)}, or open the dashboard."
        " Ctrl-C stops."
    )
    return "\n".join(lines)


def agents_url(url: str, settings: Settings) -> str:
    """The address agents reach toolwatch at: ``public_url`` when set; for a wildcard listen address,
    loopback (the machine's own name works too)."""
    if settings.public_url:
        return settings.public_url
    if settings.host in WILDCARD_HOSTS:
        return f"http://127.0.0.1:{url.rsplit(':', 1)[1]}"
    return url


def report_command(settings: Settings, url: str) -> str:
    """``toolwatch report`` as it finds this serve from another terminal."""
    path = chdb_path(settings.store)
    if path is None:
        return f"toolwatch report --server {url}"
    origin = getattr(settings, "store_origin", None)  # where the settings found the store, when they say
    if origin in ("default", "legacy") or Path(path) == Path.cwd() / "toolwatch-data" / "store":
        return "toolwatch report"
    return f"toolwatch report --store {settings.store}"


def safe_dsn(dsn: str) -> str:
    """The DSN without its user and password."""
    scheme, sep, rest = dsn.partition("://")
    return f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}"
