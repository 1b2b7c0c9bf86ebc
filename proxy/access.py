"""Who may use what toolwatch itself serves: ``/_toolwatch/*``, ``/metrics`` and ``/``. Proxied routes
never pass through these rules (the upstream judges the agent's own key), and ``/healthz`` stays open.

- **Host allow-list, on loopback too.** A request whose ``Host`` is not a loopback name, the listen
  address, or the host of ``public_url`` gets 421: a page on another site cannot reach toolwatch through
  DNS rebinding.
- **Token.** With ``admin_token`` set, every such request needs ``Authorization: Bearer <token>`` or the
  ``toolwatch_token`` cookie, which ``/_toolwatch/login?token=...`` sets for a browser.
- **Writes.** A POST needs the bearer token, or the ``Toolwatch-Request`` header (which a browser sends
  cross-site only after a CORS preflight that toolwatch never grants): a simple cross-site form or fetch
  cannot trigger one.
- Without a token (loopback only, see ``serve``), reading is open.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from toolwatch.schemas.settings import Settings

COOKIE = "toolwatch_token"
WRITE_HEADER = "Toolwatch-Request"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def own_route(path: str) -> bool:
    """What toolwatch serves itself, as opposed to what it proxies."""
    return path == "/" or path == "/metrics" or path.startswith("/_toolwatch/") or path == "/_toolwatch"


def allowed_hosts(settings: Settings) -> frozenset[str]:
    hosts = {settings.host.strip("[]").lower()} - {"0.0.0.0", "::", ""}
    if settings.public_url:
        hosts.add((urlsplit(settings.public_url).hostname or "").lower())
    return frozenset(hosts)


def _host_of(request: web.Request) -> str:
    host = request.headers.get("Host", "")
    if host.startswith("["):  # [::1]:8787
        return host[1 : host.find("]")].lower() if "]" in host else host.lower()
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def middleware(settings: Settings) -> Middleware:
    token = settings.admin_token.encode()
    hosts = allowed_hosts(settings)

    def bearer(request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        return bool(token) and auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].strip().encode(), token)

    def cookie(request: web.Request) -> bool:
        value = request.cookies.get(COOKIE, "")
        return bool(token) and hmac.compare_digest(value.encode(), token)

    @web.middleware
    async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not own_route(request.path):
            return await handler(request)
        host = _host_of(request)
        if not (is_loopback(host) or host in hosts):
            return _error(421, f"toolwatch does not answer for host {host!r}: set public_url to serve it there")
        if request.path == "/_toolwatch/login":
            return login(request, token)
        if token and not (bearer(request) or cookie(request)):
            if request.method == "GET" and request.path.startswith("/_toolwatch") and "/api/" not in request.path:
                raise web.HTTPFound("/_toolwatch/login")
            return _error(401, "a token is needed: Authorization: Bearer <admin_token>")
        if request.method not in ("GET", "HEAD", "OPTIONS") and not (
            bearer(request) or WRITE_HEADER in request.headers
        ):
            return _error(403, f"a write needs the bearer token or the {WRITE_HEADER} header")
        return await handler(request)

    return access


def login(request: web.Request, token: bytes) -> web.StreamResponse:
    """``/_toolwatch/login?token=...`` sets the cookie and goes to the dashboard; without a valid token it
    says how to get in."""
    given = request.query.get("token", "").encode()
    if token and given and hmac.compare_digest(given, token):
        found = web.HTTPFound("/_toolwatch/")
        found.set_cookie(COOKIE, given.decode(), httponly=True, samesite="Strict", path="/", max_age=30 * 86400)
        raise found
    if not token:
        raise web.HTTPFound("/_toolwatch/")
    return web.Response(
        status=401,
        content_type="text/html",
        text=(
            "<!doctype html><meta charset=utf-8><title>toolwatch</title>"
            "<p>This toolwatch needs its admin token. Open <code>/_toolwatch/login?token=YOUR_TOKEN</code> once;"
            " a cookie keeps you signed in.</p>"
        ),
    )
