"""ASGI middleware that reads every request body before any route sees it: refused with 413 above
a size limit, and with 408 when the whole body has not arrived within a read timeout.

The body is read here, up to the limit, and handed on whole: the gateway's bodies are small,
and refusing here means no route ever sees a partial or oversized document. The timeout is
for the whole body, not per chunk, so a client trickling a byte at a time cannot hold a
connection (and a worker's memory) open for long; the 408 closes the connection.
"""

from __future__ import annotations

import asyncio

from app.http_guard import send_error


class BodyLimitMiddleware:
    def __init__(self, app, max_bytes: int, timeout_s: float = 10.0):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large(send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        body, more = b"", True
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
            except TimeoutError:
                return await send_error(send, 408, "body_timeout", f"the request body did not arrive within "
                                        f"{self.timeout_s:g} s (TUNIX_API_BODY_TIMEOUT_S)", close=True)
            if message["type"] != "http.request":
                return await self.app(scope, _replay([message]), send)
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await self._too_large(send)
        await self.app(scope, _replay([{"type": "http.request", "body": body}], receive), send)

    async def _too_large(self, send) -> None:
        await send_error(send, 413, "body_too_large", f"request body must be at most {self.max_bytes} bytes")


def _replay(messages: list[dict], then=None):
    """A receive() that hands out `messages`, then defers to the real receive (disconnects)."""

    async def receive():
        if messages:
            return messages.pop(0)
        return await then() if then else {"type": "http.disconnect"}

    return receive
