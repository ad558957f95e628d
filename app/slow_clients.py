"""The api's HTTP server options, and a deadline for request headers that uvicorn lacks.

uvicorn 0.54's h11 protocol times nothing until a request's headers are complete: a connection
that sends nothing, or a byte at a time (any data cancels its keep-alive timer), stays open for
ever, and enough of them exhaust the process's sockets. `HeaderDeadline` closes a connection
whose request line and headers have not all arrived within the deadline of the connection
opening, or of its previous response completing. The body has its own deadline
(app/body_limit.py), and `limit_concurrency` answers 503 past that many connections.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from adapters.settings import Settings

# Connections (and requests in flight) served at once; past it uvicorn answers 503.
MAX_CONNECTIONS = 1000
KEEP_ALIVE_S = 5  # an idle keep-alive connection closes after this (uvicorn's default, said on purpose)


class HeaderDeadline(H11Protocol):
    """H11Protocol whose every request's line and headers must arrive within `headers_timeout_s`."""

    headers_timeout_s: float = 10.0
    _deadline: asyncio.TimerHandle | None = None
    _waiting_after: object = None  # the cycle before the request the deadline is for

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        self._arm()  # before super(): it parses a pipelined request at once, which disarms this
        super().on_response_complete()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not self._waiting_after:  # a new request's headers arrived
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._waiting_after = self.cycle
        self._deadline = self.loop.call_later(self.headers_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.logger.info("closed a connection whose request headers did not arrive in time")
            self.transport.close()


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.run's keyword arguments for the api (tests start the same server)."""
    protocol = type("HeaderDeadline", (HeaderDeadline,), {"headers_timeout_s": settings.api_body_timeout_s})
    return {"host": settings.api_host, "port": settings.api_port, "log_config": None, "access_log": False,
            "timeout_keep_alive": KEEP_ALIVE_S, "server_header": False, "http": protocol,
            "limit_concurrency": MAX_CONNECTIONS}
