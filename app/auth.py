"""Optional bearer token on the API: with TUNIX_API_TOKEN set, every /api request must carry
`Authorization: Bearer <token>`; health, metrics, docs and the dashboard's files stay open."""

from __future__ import annotations

import hmac

from fastapi import Request


class Unauthorized(Exception):
    pass


async def require_token(request: Request) -> None:
    expected = request.app.state.settings.api_token
    if not expected:
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
        raise Unauthorized


def actor(request: Request) -> str:
    """Who sends a command: the name bound to the caller's token. One shared token names no
    one, so every command is "anonymous" until tokens carry names."""
    return "anonymous"
