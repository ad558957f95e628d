"""Every error answer of the API, in one place and one body (schemas.api.ErrorBody): 422 names
each field and rule, 404/409 say why a command does not apply, 413 for oversized bodies, 503
when a backing service is down; never a stack trace. An unexpected error is a 500 naming an
error id, under which the traceback is logged."""

from __future__ import annotations

from uuid import uuid4

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from adapters.publisher import EventTooLarge, Unavailable
from app.auth import Forbidden, Unauthorized
from schemas.api import ErrorBody, FieldError
from schemas.search_space import PARAM_TYPES
from service.errors import InvalidJob, JobConflict, JobNotFound, ModelNotFound, TrialNotFound

log = structlog.get_logger("api")


def error_response(status: int, error: str, message: str, details=()) -> JSONResponse:
    body = ErrorBody(error=error, message=_shown(message), details=list(details))
    return JSONResponse(body.model_dump(), status_code=status)


def _shown(text: str) -> str:
    """Text as UTF-8 can carry it: a lone surrogate the client sent (in a key, echoed in a field
    path or a rule) is shown as its escape, \\ud800, not turned into bytes no JSON reader takes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def internal_error(exc: BaseException, method: str, path: str) -> JSONResponse:
    """A 500 that names an id and nothing else; the traceback is logged under the id."""
    error_id = uuid4().hex[:16]
    log.error("unexpected error", error_id=error_id, method=method, path=path, exc_info=exc)
    return error_response(500, "internal_error", f"unexpected error {error_id}: the API's log has the details "
                                                 "under this id")


def validation_error(details: list[FieldError]) -> JSONResponse:
    return error_response(422, "validation_error", "; ".join(f"{d.field}: {d.rule}" for d in details), details)


def field_errors(errors: list[dict]) -> list[FieldError]:
    return [
        FieldError(field="body" if e["type"] == "json_invalid" else _shown(_field(e["loc"])), rule=_shown(_rule(e)))
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
        return validation_error([FieldError(field=_shown(p.field), rule=_shown(p.rule)) for p in exc.problems])

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

    @app.exception_handler(EventTooLarge)
    async def _too_large(_: Request, exc: EventTooLarge) -> JSONResponse:
        # The command layer names the field to change where it can (a warm start's top_k); this
        # is what is left: the request made an event Kafka would never take.
        return error_response(422, "event_too_large", f"{exc}: send less in one command")

    async def _database_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable", detail=str(exc).splitlines()[0] if str(exc) else "")
        return error_response(503, "postgres_unavailable", "postgres unavailable: cannot reach the read model")

    # The database's connection-level errors only: an unreachable server's OSError becomes
    # Unavailable("postgres") where the connection is made (service/read/queries.py); any other
    # OSError (a full or read-only disk under a promote) is an unexpected error, a 500 with an id.
    for exc_type in (OperationalError, InterfaceError, asyncpg.exceptions.PostgresConnectionError,
                     asyncpg.exceptions.ConnectionDoesNotExistError):
        app.add_exception_handler(exc_type, _database_down)

    @app.exception_handler(DBAPIError)
    async def _database_refused(request: Request, exc: DBAPIError) -> JSONResponse:
        # The gateway only reads, with values from the request: a value PostgreSQL refuses (text
        # with NUL, a time out of its range) is the request's fault. The schemas bound every
        # parameter so this should not happen; the database's words stay in the log.
        cause = getattr(exc.orig, "__cause__", None) or exc.orig
        if not isinstance(cause, asyncpg.exceptions.DataError):
            return internal_error(exc, request.method, request.url.path)
        error_id = uuid4().hex[:16]
        log.warning("database refused a request value", error_id=error_id, path=request.url.path,
                    detail=str(cause).splitlines()[0] if str(cause) else type(cause).__name__)
        return error_response(422, "invalid_value", f"a value in the request cannot be used to search the read "
                                                    f"model (error id {error_id})")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette calls this for what escapes every middleware (InternalErrors catches the rest).
        return internal_error(exc, request.method, request.url.path)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "__none__"})
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


_ERROR_NAMES = {404: "not_found", 405: "method_not_allowed", 406: "not_acceptable", 415: "unsupported_media_type"}


class InternalErrors:
    """ASGI middleware: an exception no handler took becomes internal_error's 500 here, inside
    the security headers (Starlette's own last-resort handler answers outside every middleware
    and logs the traceback a second time through the server)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # too late for an answer: the server closes the connection
                raise
            await internal_error(exc, scope.get("method", ""), scope.get("path", ""))(scope, receive, send)
