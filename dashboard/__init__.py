"""The dashboard stage: toolwatch's own pages at ``/_toolwatch/``, served by the proxy process.

Static HTML, CSS and JavaScript (no build step) plus a vendored chart library (uPlot); every page reads
its figures once at load, and then every few seconds, from the read API at ``/_toolwatch/api/``, so each
page has a JSON twin that gives the same figures. ``add_routes`` mounts the pages on an aiohttp app; the
access rules of ``proxy/access.py`` (host allow-list, token, cookie) apply to them like to the API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

from aiohttp import web

STATIC = Path(str(resources.files("toolwatch.dashboard").joinpath("static")))
PAGES = {
    "/_toolwatch/": "index.html",
    "/_toolwatch/sessions": "sessions.html",
    "/_toolwatch/session": "session.html",
    "/_toolwatch/call": "call.html",
    "/_toolwatch/tools": "tools.html",
    "/_toolwatch/alerts": "alerts.html",
}


def _page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def page(request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(STATIC / name)
        response.headers["Cache-Control"] = "no-cache"
        return response

    return page


def add_routes(app: web.Application) -> None:
    for path, name in PAGES.items():
        app.router.add_get(path, _page(name))
    app.router.add_static("/_toolwatch/static/", STATIC, append_version=False)
