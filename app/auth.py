"""Who may call the API. With TUNIX_API_TOKENS (`name:read|write:token`, comma-separated),
every /api request needs `Authorization: Bearer <token>`: the token's name is the `actor` on
every event the request publishes, and a read token gets 403 on every command. The older
TUNIX_API_TOKEN is one write token named "api-token". Without either, the API is open and
every command's actor is "anonymous". Health, metrics, docs and the dashboard's files stay open.
Token values are compared in constant time and never logged or put on an event."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from fastapi import Request

ANONYMOUS = "anonymous"
READ_METHODS = ("GET", "HEAD", "OPTIONS")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


class Unauthorized(Exception):
    pass


class Forbidden(Exception):
    def __init__(self, name: str):
        super().__init__(f"the token of {name} may only read; commands need a write token")
        self.name = name

    def __reduce__(self):  # rebuilt from its own argument, not its message, when unpickled
        return type(self), (self.name,), self.__dict__


@dataclass(frozen=True)
class Principal:
    name: str
    can_write: bool


def parse_tokens(tokens: str | None, single: str | None = None) -> dict[str, Principal]:
    """Token -> who holds it, from TUNIX_API_TOKENS (and TUNIX_API_TOKEN); ValueError naming
    the entry (by position, never by its token) when one is malformed."""
    found: dict[str, Principal] = {}
    for i, entry in enumerate(filter(None, (e.strip() for e in (tokens or "").split(","))), start=1):
        name, rights, token = (entry.split(":", 2) + ["", ""])[:3]
        if not _NAME.match(name) or rights not in ("read", "write") or len(token) < 8:
            raise ValueError(f"TUNIX_API_TOKENS entry {i} must be name:read|write:token (a name of letters, "
                             "digits, ._@-; a token of at least 8 characters)")
        if token in found:
            raise ValueError(f"TUNIX_API_TOKENS entry {i} repeats another entry's token")
        found[token] = Principal(name, rights == "write")
    if single:
        found.setdefault(single, Principal("api-token", True))
    return found


async def require_token(request: Request) -> None:
    principals: dict[str, Principal] = request.app.state.principals
    if not principals:
        request.state.principal = Principal(ANONYMOUS, True)
        return
    given = request.headers.get("authorization", "").encode()
    holder = None
    for token, principal in principals.items():  # every one compared: no timing hint of which
        if hmac.compare_digest(given, f"Bearer {token}".encode()):
            holder = principal
    if holder is None:
        raise Unauthorized
    if request.method not in READ_METHODS and not holder.can_write:
        raise Forbidden(holder.name)
    request.state.principal = holder


def actor(request: Request) -> str:
    """Who sends a command: the name bound to the caller's token ("anonymous" when the API is open)."""
    principal = getattr(request.state, "principal", None)
    return principal.name if principal is not None else ANONYMOUS
