"""The tuning API: commands publish events, queries read the projected read model."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated
from uuid import UUID, uuid4

import structlog
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from app import queries
from app.auth import require_token
from app.errors import error_response
from schemas import events as ev
from schemas.api import (
    JOB_STATUSES,
    TERMINAL_JOB_STATUSES,
    Accepted,
    ErrorBody,
    EventOut,
    FieldError,
    JobOut,
    JobPage,
    JobStatus,
    TrialHistory,
)
from schemas.job_spec import JobSpec
from training.validate import validate_job

SOURCE = "tunix-tune.gateway"
POLL_INTERVAL_S = 0.05
router = APIRouter(prefix="/api/tuning/jobs", tags=["tuning jobs"], dependencies=[Depends(require_token)])
log = structlog.get_logger("api")
_errors = {
    401: {"model": ErrorBody},
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody},
    503: {"model": ErrorBody},
}


def _location(job_id: UUID) -> str:
    return f"/api/tuning/jobs/{job_id}"


@router.post(
    "",
    status_code=201,
    response_model=JobOut,
    responses={202: {"model": Accepted}, **_errors},
    summary="Create a tuning job (publishes JobCreated)",
)
async def create_job(spec: JobSpec, request: Request, response: Response):
    named = {**{f"search_space.{n}": n for n in spec.search_space},
             **{f"fixed_params.{n}": n for n in spec.fixed_params}}
    perturbed = {f"search_space.{n}": n for n in spec.perturbed_params()}
    problems = validate_job(spec.dataset_key, spec.base_model_id, spec.metric_name, named, perturbed)
    if problems:
        details = [FieldError(field=f, rule=r) for f, r in problems]
        message = "; ".join(f"{d.field}: {d.rule}" for d in details)
        return error_response(422, "validation_error", message, details)
    event = ev.JobCreated(job_id=uuid4(), source=SOURCE, payload=ev.JobCreatedPayload(spec=spec))
    if not await _publish_and_wait(request, event):
        return _accepted(event)
    response.headers["Location"] = _location(event.job_id)
    return await queries.get_job(request.app.state.engine, event.job_id)


async def _publish_and_wait(request: Request, event: ev.Event) -> bool:
    """Publish, then poll the read model until the projector has the event, up to the
    configured wait (TUNIX_CREATE_WAIT_S). True when it was projected in time."""
    state = request.app.state
    with structlog.contextvars.bound_contextvars(
        job_id=str(event.job_id), event_id=str(event.event_id)
    ):
        await state.publisher.publish(event)
        log.info("event published", type=event.type)
    deadline = time.monotonic() + state.settings.create_wait_s
    while not await queries.event_projected(state.engine, event.event_id):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_INTERVAL_S)
    return True


def _accepted(event: ev.Event) -> JSONResponse:
    body = Accepted(
        job_id=event.job_id,
        event_id=event.event_id,
        event_type=event.type,
        location=_location(event.job_id),
    )
    return JSONResponse(
        body.model_dump(mode="json"), status_code=202, headers={"Location": body.location}
    )


@router.post(
    "/{job_id}/start",
    status_code=202,
    response_model=Accepted,
    responses=_errors,
    summary="Start a created job (publishes JobStarted)",
)
async def start_job(job_id: UUID, request: Request):
    status = await queries.job_status(request.app.state.engine, job_id)
    if status is None:
        return _not_found(job_id)
    if status != "created":
        return error_response(409, "conflict", f"job {job_id} is {status}; only a created job can start")
    return await _publish_command(request, ev.JobStarted(job_id=job_id, source=SOURCE))


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=Accepted,
    responses=_errors,
    summary="Ask a job to stop (publishes JobCancelRequested)",
)
async def cancel_job(job_id: UUID, request: Request):
    status = await queries.job_status(request.app.state.engine, job_id)
    if status is None:
        return _not_found(job_id)
    if status in TERMINAL_JOB_STATUSES:
        return error_response(409, "conflict", f"job {job_id} is already {status}")
    return await _publish_command(request, ev.JobCancelRequested(job_id=job_id, source=SOURCE))


async def _publish_command(request: Request, event: ev.Event) -> JSONResponse:
    await _publish_and_wait(request, event)
    return _accepted(event)


def _not_found(job_id: UUID) -> JSONResponse:
    return error_response(404, "not_found", f"no tuning job {job_id}")


@router.get("", response_model=JobPage, responses=_errors, summary="List jobs, newest first")
async def list_jobs(
    request: Request,
    status: Annotated[JobStatus | None, Query(description=f"one of {', '.join(JOB_STATUSES)}")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
):
    return await queries.list_jobs(request.app.state.engine, status, limit, offset)


@router.get("/{job_id}", response_model=JobOut, responses=_errors, summary="A job, its trials and best trial")
async def get_job(job_id: UUID, request: Request):
    job = await queries.get_job(request.app.state.engine, job_id)
    return job if job is not None else _not_found(job_id)


@router.get(
    "/{job_id}/events",
    response_model=list[EventOut],
    responses=_errors,
    summary="The job's audit trail, in log order",
)
async def get_job_events(job_id: UUID, request: Request):
    if await queries.job_status(request.app.state.engine, job_id) is None:
        return _not_found(job_id)
    return await queries.job_events(request.app.state.engine, job_id)


@router.get(
    "/{job_id}/history",
    response_model=list[TrialHistory],
    responses=_errors,
    summary="Every result each trial reported, in order (learning curves)",
)
async def get_metric_history(job_id: UUID, request: Request):
    if await queries.job_status(request.app.state.engine, job_id) is None:
        return _not_found(job_id)
    return await queries.metric_history(request.app.state.engine, job_id)
