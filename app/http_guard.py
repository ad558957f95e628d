"""ASGI middleware that guards every answer of the API and the dashboard: security headers, and
the Host check that keeps a DNS-rebound web page away from an API without tokens.

Headers: the dashboard (/ui) loads nothing from elsewhere (plotly.js is served from the plotly
package), so its Content-Security-Policy allows only this origin and no inline script. plotly.js
sets inline styles (style-src 'unsafe-inline'), and its WebGL plots (the parallel coordinates)
compile their shaders' code with Function ('unsafe-eval'; the PyPI package ships no "strict"
bundle). The API's own answers are data: a policy that allows nothing. Nobody may frame a page
(clickjacking), and no response is sniffed into another type. /docs and /redoc are FastAPI's
pages, which load Swagger UI and ReDoc from their CDN with an inline script: they get a policy
that allows exactly that.

Host check: with no TUNIX_API_TOKENS/TUNIX_API_TOKEN the API is open to whoever reaches it. A
page on another site can make a browser reach it anyway by pointing its own DNS name at
127.0.0.1 (DNS rebinding); the browser then sends that name as Host. So an open API answers
only Host localhost, 127.0.0.1 or [::1] (any port) and the names in TUNIX_API_ALLOWED_HOSTS.
The probes (/healthz, /readyz) answer whatever the Host: orchestrators call them by address;
/readyz tells a Host that is not allowed only its status, never what the checks found (Kafka's
and PostgreSQL's error texts are for the operator, not for a rebound page to read).
With tokens, a rebound page has no token and the check is off.

A Host is parsed strictly: `[v6 address]` or a DNS name / IPv4 address (one trailing dot at
most), each with an optional numeric port and nothing else; anything else names no host and is
never allowed (`[::1]evil.com` is not `[::1]`).
"""

from __future__ import annotations

import re

from schemas.api import ErrorBody

_DASHBOARD = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
              "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
              "form-action 'self'; frame-ancestors 'none'")
_NOTHING = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
_DOCS_CDN = "https://cdn.jsdelivr.net"
_DOCS = (f"default-src 'self'; script-src 'self' 'unsafe-inline' {_DOCS_CDN}; "
         f"style-src 'self' 'unsafe-inline' {_DOCS_CDN} https://fonts.googleapis.com; "
         "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
         f"{_DOCS_CDN}; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
         "frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
PROBE_PATHS = frozenset({"/healthz", "/readyz"})


def policy(path: str) -> str:
    """The Content-Security-Policy of an answer at `path`."""
    if path in DOCS_PATHS:
        return _DOCS
    return _DASHBOARD if path == "/ui" or path.startswith("/ui/") else _NOTHING


def _headers(path: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", policy(path).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
    ]


class SecurityHeaders:
    """Adds the headers above to every HTTP answer (set here, they win over a route's own)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        extra = _headers(scope.get("path", ""))
        names = {name for name, _ in extra}

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_PORT = r"(?::[0-9]{1,5})?"
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST = re.compile(rf"(\[[0-9a-f:.]+\]){_PORT}|((?:{_LABEL}\.)*{_LABEL})\.?{_PORT}")


def host_name(host: str) -> str | None:
    """The name in a Host header, without its port, lower-case: `[::1]:8000` -> `[::1]`; None
    for a header that is not exactly a host and an optional port."""
    found = _HOST.fullmatch(host.strip().lower())
    return (found.group(1) or found.group(2)) if found else None


def allowed_hosts(configured: str | None) -> frozenset[str]:
    """localhost's names and the comma-separated TUNIX_API_ALLOWED_HOSTS ("*": any); ValueError
    for an entry that is not a host name."""
    names = set(LOCAL_HOSTS)
    for entry in (h.strip() for h in (configured or "").split(",")):
        name = "*" if entry == "*" else host_name(entry) if entry else ""
        if name is None:
            raise ValueError(f"TUNIX_API_ALLOWED_HOSTS: {entry[:100]!r} is not a host name (host or host:port)")
        if name:
            names.add(name)
    return frozenset(names)


def host_allowed(host: str, allowed: frozenset[str] | None) -> bool:
    """Whether a request with this Host header may be answered (`allowed` None: no check)."""
    return allowed is None or "*" in allowed or host_name(host) in allowed


class HostCheck:
    """Refuses (421) a request whose Host is not an allowed name; `allowed` None: no check."""

    def __init__(self, app, allowed: frozenset[str] | None):
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") in PROBE_PATHS:
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        if host_allowed(given, self.allowed):
            return await self.app(scope, receive, send)
        await send_error(send, 421, "host_not_allowed",
                         f"this API has no tokens, so it answers only requests addressed to localhost, 127.0.0.1, "
                         f"[::1] or a name in TUNIX_API_ALLOWED_HOSTS; Host was {given[:100]!r} (set "
                         "TUNIX_API_ALLOWED_HOSTS, or TUNIX_API_TOKENS)")


async def send_error(send, status: int, error: str, message: str, close: bool = False) -> None:
    """An ErrorBody answer from a middleware (before any route ran)."""
    body = ErrorBody(error=error, message=message).model_dump_json().encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # the server drops the connection after this answer instead of reading on
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
