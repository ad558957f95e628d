"""Health, readiness and metrics over HTTP for a consumer process (the API has its own).

/healthz: the process is up. /readyz: 200 when every check the consumer supplies says "ok",
else 503 with the checks. /metrics: Prometheus exposition (schemas/metrics.py). The server
runs as a task in the consumer's event loop; the port is bound before anything else starts,
so a taken port stops the process at once with a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from schemas.metrics import exposition

Checks = Callable[[], Awaitable[dict[str, str]]]
log = structlog.get_logger("probes")


def probe_app(checks: Checks) -> Starlette:
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        results = await checks()
        ready = all(v == "ok" for v in results.values())
        return JSONResponse({"status": "ready" if ready else "unavailable", "checks": results},
                            status_code=200 if ready else 503)

    async def metrics(_: Request) -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)])


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"cannot serve health and metrics on {host}:{port}: {exc.strerror}") from None
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        yield  # the consumer owns SIGTERM and SIGINT


def serve_probes(sock: socket.socket, checks: Checks, on_failure: Callable[[], None]) -> asyncio.Task:
    """Serve until the task is cancelled. If the server fails, the consumer is stopped
    (on_failure): a process whose probes are gone would look dead to its supervisor anyway."""
    server = _Server(uvicorn.Config(probe_app(checks), log_config=None, access_log=False, lifespan="off"))
    host, port = sock.getsockname()
    log.info("probes listening", url=f"http://{host}:{port}", paths=["/healthz", "/readyz", "/metrics"])

    def ended(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("probe server failed; stopping", error=repr(task.exception()))
            on_failure()
    task = asyncio.create_task(server.serve(sockets=[sock]))
    task.add_done_callback(ended)
    return task
