"""Every error answer of the API, in one place and one body (schemas.api.ErrorBody): 422 names
each field and rule, 404/409 say why a command does not apply, 413 for oversized bodies, 503
when a backing service is down; never a stack trace."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from adapters.publisher import Unavailable
from app.auth import Forbidden, Unauthorized
from schemas.api import ErrorBody, FieldError
from schemas.search_space import PARAM_TYPES
from service.errors import InvalidJob, JobConflict, JobNotFound, ModelNotFound, TrialNotFound

log = structlog.get_logger("api")


def error_response(status: int, error: str, message: str, details=()) -> JSONResponse:
    body = ErrorBody(error=error, message=message, details=list(details))
    return JSONResponse(body.model_dump(), status_code=status)


def validation_error(details: list[FieldError]) -> JSONResponse:
    return error_response(422, "validation_error", "; ".join(f"{d.field}: {d.rule}" for d in details), details)


def field_errors(errors: list[dict]) -> list[FieldError]:
    return [
        FieldError(field="body" if e["type"] == "json_invalid" else _field(e["loc"]), rule=_rule(e))
        for e in errors
    ]


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p != "body"]
    # Drop the discriminator tag pydantic puts after a parameter name (search_space.lr.uniform.min).
    if len(parts) > 2 and parts[0] == "search_space" and parts[2] in PARAM_TYPES:
        del parts[2]
    return ".".join(parts) or "body"


def _rule(error: dict) -> str:
    msg = error["msg"].removeprefix("Value error, ")
    if error["type"] == "json_invalid":
        position = f" at character {error['loc'][-1]}" if len(error["loc"]) > 1 else ""
        return f"body must be valid JSON{position} ({error.get('ctx', {}).get('error', msg)})"
    if error["type"] == "missing":
        return "a JSON body is required" if tuple(error["loc"]) == ("body",) else "field required"
    if error["type"] == "extra_forbidden":
        return "unknown field (not allowed)"
    return msg


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(field_errors(list(exc.errors())))

    @app.exception_handler(InvalidJob)
    async def _invalid_job(_: Request, exc: InvalidJob) -> JSONResponse:
        return validation_error([FieldError(field=p.field, rule=p.rule) for p in exc.problems])

    @app.exception_handler(JobNotFound)
    @app.exception_handler(ModelNotFound)
    @app.exception_handler(TrialNotFound)
    async def _not_found(_: Request, exc: JobNotFound | ModelNotFound | TrialNotFound) -> JSONResponse:
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(JobConflict)
    async def _conflict(_: Request, exc: JobConflict) -> JSONResponse:
        return error_response(409, "conflict", str(exc))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body Starlette could not read as JSON (e.g. not UTF-8)
            return validation_error([FieldError(field="body", rule=f"body must be UTF-8 JSON ({exc.detail})")])
        answer = error_response(exc.status_code, _ERROR_NAMES.get(exc.status_code, "http_error"), str(exc.detail))
        answer.headers.update(exc.headers or {})
        if exc.status_code == 405:
            answer.headers["Allow"] = ", ".join(_allowed_methods(request))
        return answer

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        answer = error_response(401, "unauthorized", "this API needs Authorization: Bearer <token> (TUNIX_API_TOKEN)")
        answer.headers["WWW-Authenticate"] = "Bearer"
        return answer

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return error_response(403, "forbidden", str(exc))

    @app.exception_handler(Unavailable)
    async def _unavailable(_: Request, exc: Unavailable) -> JSONResponse:
        log.warning("backing service unavailable", service=exc.service, detail=exc.detail)
        return error_response(503, f"{exc.service}_unavailable", str(exc))

    async def _database_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable", detail=str(exc).splitlines()[0] if str(exc) else "")
        return error_response(503, "postgres_unavailable", "postgres unavailable: cannot reach the read model")

    for exc_type in (OSError, TimeoutError, OperationalError, InterfaceError):
        app.add_exception_handler(exc_type, _database_down)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "__none__"})
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


_ERROR_NAMES = {404: "not_found", 405: "method_not_allowed", 406: "not_acceptable", 415: "unsupported_media_type"}
