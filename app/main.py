"""The HTTP gateway: validates commands, publishes events, serves the read model.

Run it with `tunix-tune serve api` (uvicorn on TUNIX_API_HOST:TUNIX_API_PORT, 127.0.0.1:8000).
`create_app` is also how tests build it: with the real adapters, or with fakes for the
publisher and the read model (tests/unit).
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from adapters.database import make_engine
from adapters.kafka_security import client_options
from adapters.logs import configure_logging
from adapters.publisher import EventPublisher, Unavailable
from adapters.settings import Settings
from app import dashboard, errors, openapi
from app.body_limit import BodyLimitMiddleware
from app.http_guard import HostCheck, SecurityHeaders, allowed_hosts, host_allowed
from app.auth import parse_tokens
from app.slow_clients import server_options
from app.routes import compare_router, models_router, registry_router, router, tuners_router
from schemas.api import ErrorBody, Health, Readiness
from schemas.metrics import CONTENT_TYPE, exposition
from service.commands.commands import Gateway
from service.read.queries import Queries


def create_app(settings: Settings, gateway: Gateway | None = None, queries: Queries | None = None) -> FastAPI:
    """The app; `gateway` and `queries` replace the real Kafka and PostgreSQL adapters (tests)."""
    kafka_security = client_options(settings)  # built here: TLS files that do not load stop `serve` at once

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.settings, app.state.kafka_security = settings, kafka_security
        if gateway is not None:
            app.state.gateway, app.state.queries, app.state.publisher = gateway, queries, gateway.publisher
            app.state.engine = None
            yield
            return
        app.state.engine = make_engine(settings.database_url, pool_size=10)
        app.state.publisher = EventPublisher(settings.kafka_bootstrap_servers, settings.topics,
                                             settings.publish_timeout_s, kafka_security)
        app.state.queries = Queries(app.state.engine)
        app.state.gateway = Gateway(app.state.publisher, app.state.queries, settings.training_folders,
                                    settings.create_wait_s, settings.registry_dir, settings.tuning_dir)
        try:
            yield
        finally:
            await app.state.publisher.close()
            await app.state.engine.dispose()

    app = FastAPI(
        title="Tunix Tune",
        version="0.1.0",
        description="Hyperparameter tuning for JAX/Tunix post-training runs, on an event log.",
        lifespan=lifespan,
        responses={
            408: {"model": ErrorBody, "description": "The request body did not arrive within TUNIX_API_BODY_TIMEOUT_S"},
            413: {"model": ErrorBody, "description": "The request body is over the size limit"},
            421: {"model": ErrorBody, "description": "No token is configured and Host is not localhost or a name in "
                                                     "TUNIX_API_ALLOWED_HOSTS"},
            500: {"model": ErrorBody, "description": "An unexpected error: the message names the error id it is "
                                                     "logged under"},
        },
    )
    app.state.principals = parse_tokens(settings.api_tokens, settings.api_token)  # refuses a malformed entry
    # Outermost last: headers on every answer, the Host checked before anything is read, an
    # unexpected error answered (500 with an id) inside both, the body read within its limits.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout_s=settings.api_body_timeout_s)
    app.add_middleware(errors.InternalErrors)
    app.state.allowed_hosts = None if app.state.principals else allowed_hosts(settings.api_allowed_hosts)
    app.add_middleware(HostCheck, allowed=app.state.allowed_hosts)
    app.add_middleware(SecurityHeaders)
    errors.install(app)
    app.include_router(router)
    app.include_router(models_router)
    app.include_router(tuners_router)
    app.include_router(registry_router)
    app.include_router(compare_router)
    dashboard.install(app)
    openapi.install(app, settings.training_folders)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics of this process",
             response_class=Response,
             responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format"}})
    async def metrics():
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    @app.get("/healthz", tags=["health"], summary="The process is up", response_model=Health)
    async def healthz():
        return Health(status="ok")

    @app.get("/readyz", tags=["health"], summary="Kafka and PostgreSQL answer", response_model=Readiness,
             responses={503: {"model": Readiness, "description": "Kafka or PostgreSQL does not answer"}})
    async def readyz(request: Request):
        checks = {}
        try:
            await request.app.state.publisher.ping()
            checks["kafka"] = "ok"
        except Unavailable as exc:
            checks["kafka"] = exc.detail
        try:
            async with request.app.state.engine.connect() as conn:
                # Reachable and migrated: the read model's tables answer.
                await conn.execute(text("select 1 from tunix_tuning_jobs limit 1"))
            checks["postgres"] = "ok"
        except Exception as exc:  # any failure to reach the database means not ready
            checks["postgres"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        ready = all(v == "ok" for v in checks.values())
        if not host_allowed(request.headers.get("host", ""), request.app.state.allowed_hosts):
            checks = {}  # a probe by address, or a rebound page: the status, not the services' error texts
        body = Readiness(status="ready" if ready else "unavailable", checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    return app


def serve() -> None:
    import uvicorn

    try:
        settings = Settings.from_env()  # a contradictory Kafka security setting: said once, no secret
        configure_logging(settings.log_format, settings.log_level)
        app = create_app(settings)
    except ValueError as exc:  # a malformed TUNIX_API_TOKENS: said once, without the tokens
        raise SystemExit(f"api refused to start: {exc}") from None
    # Slow headers are closed (app/slow_clients.py), a slow body gets a 408 (app/body_limit.py),
    # each after TUNIX_API_BODY_TIMEOUT_S; an idle keep-alive connection after 5 s.
    uvicorn.run(app, **server_options(settings))


if __name__ == "__main__":
    serve()
