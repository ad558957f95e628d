"""The HTTP gateway: validates commands, publishes events, serves the read model.

Run it with `tunix-tune serve api` (uvicorn on TUNIX_API_HOST:TUNIX_API_PORT, 127.0.0.1:8000).
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from sqlalchemy import text

from app import dashboard, errors
from app.body_limit import BodyLimitMiddleware
from app.publisher import EventPublisher, Unavailable
from app.routes import router
from schemas.db import make_engine
from schemas.logs import configure_logging
from schemas.metrics import exposition
from schemas.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.settings = settings
        app.state.engine = make_engine(settings.database_url, pool_size=10)
        app.state.publisher = EventPublisher(
            settings.kafka_bootstrap_servers, settings.publish_timeout_s
        )
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
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    errors.install(app)
    app.include_router(router)
    dashboard.install(app)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics of this process")
    async def metrics():
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    @app.get("/healthz", tags=["health"], summary="The process is up")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Kafka and PostgreSQL answer")
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
        return errors.JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    return app


def serve() -> None:
    import uvicorn

    configure_logging()
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    serve()
