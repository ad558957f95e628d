"""The tuning API: each command route hands its request to the command layer (service/), each
query route to the read model's queries; app/errors.py turns refusals into HTTP answers."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from app.auth import actor, require_token
from schemas.api import (
    Accepted,
    AsOf,
    BaseModelOut,
    CompareRow,
    DecisionOut,
    ErrorBody,
    EventOut,
    ImportanceOut,
    JobOut,
    JobPage,
    ModelOut,
    ModelVersionOut,
    TrialHistory,
    TrialWhy,
    TunerOut,
    WhatIfOut,
)
from schemas.job_spec import JobSpec
from schemas.statuses import JOB_STATUSES, JobStatus
from schemas.bounded import bounded_text
from schemas.steering import CommandNote, Extension, Fork, JobAdjustment, Promotion, TrialId
from service.audit.why import decisions, explain
from service.commands import commands, steering
from service.commands.commands import Gateway, Published, Sender
from service.commands.promotion import promote
from service.errors import TrialNotFound
from service.read.models import base_models
from service.read.queries import Queries
from service.read.tuners import list_tuners

# Bounds of the list query; PostgreSQL's OFFSET is a bigint, and no deployment has this many jobs.
MAX_PAGE = 200
MAX_OFFSET = 1_000_000_000
# Text from a path or query reaches SQL and the audit's replays: storable text, as long as the
# events' fields it is compared with (a model name as ModelPromoted holds it, a metric's name).
ModelName = bounded_text(100, min_length=1)
MetricName = bounded_text(100, min_length=1)

router = APIRouter(prefix="/api/tuning/jobs", tags=["tuning jobs"], dependencies=[Depends(require_token)])
tuners_router = APIRouter(prefix="/api/tuners", tags=["tuners"], dependencies=[Depends(require_token)])
models_router = APIRouter(prefix="/api/base-models", tags=["base models"], dependencies=[Depends(require_token)])
registry_router = APIRouter(prefix="/api/models", tags=["model registry"], dependencies=[Depends(require_token)])
compare_router = APIRouter(prefix="/api/tuning/compare", tags=["tuning jobs"], dependencies=[Depends(require_token)])
_errors = {status: {"model": ErrorBody} for status in (401, 422, 503)}
_job_errors = {**_errors, 404: {"model": ErrorBody}}
_command_errors = {**_job_errors, 403: {"model": ErrorBody}, 409: {"model": ErrorBody}, 202: {"model": Accepted}}


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


def _queries(request: Request) -> Queries:
    return request.app.state.queries


def _sender(request: Request, reason: str | None) -> Sender:
    return Sender(actor=actor(request), reason=reason)


async def _job_answer(job: JobOut, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    """A job as JSON, serialised off the event loop (a 10,000-trial job is CPU work); returned as
    a response, so FastAPI does not validate it again on the loop."""
    return await asyncio.to_thread(lambda: JSONResponse(job.model_dump(mode="json"), status_code, headers))


def _location(job_id: UUID) -> str:
    return f"/api/tuning/jobs/{job_id}"


def _accepted(published: Published) -> JSONResponse:
    event = published.event
    body = Accepted(job_id=event.job_id, event_id=event.event_id, event_type=event.type,
                    location=_location(event.job_id))
    return JSONResponse(body.model_dump(mode="json"), status_code=202, headers={"Location": body.location})


async def _created(request: Request, published: Published) -> JSONResponse:
    """201 with the job once the projector has it, else 202 with where it will be."""
    if not published.projected:
        return _accepted(published)
    job = await _queries(request).get_job(published.event.job_id)
    return await _job_answer(job, 201, {"Location": _location(job.job_id)})


@router.post("", status_code=201, response_model=JobOut,
             responses={**_errors, 403: {"model": ErrorBody}, 202: {"model": Accepted}},
             summary="Create a tuning job (publishes JobCreated)")
async def create_job(spec: JobSpec, request: Request):
    return await _created(request, await commands.create_job(spec, _gateway(request), _sender(request, None)))


@router.post("/{job_id}/start", status_code=202, response_model=Accepted, responses=_command_errors,
             summary="Start a created job (publishes JobStarted)")
async def start_job(job_id: UUID, request: Request, note: CommandNote | None = None):
    by = _sender(request, note.reason if note else None)
    return _accepted(await commands.start_job(job_id, _gateway(request), by))


@router.post("/{job_id}/cancel", status_code=202, response_model=Accepted, responses=_command_errors,
             summary="Ask a job to stop (publishes JobCancelRequested)")
async def cancel_job(job_id: UUID, request: Request, note: CommandNote | None = None):
    by = _sender(request, note.reason if note else None)
    return _accepted(await commands.cancel_job(job_id, _gateway(request), by))


@router.patch("/{job_id}", status_code=202, response_model=Accepted, responses=_command_errors,
              summary="Change a created or running job's concurrency, trial count, time budget or failure "
                      "allowance (publishes JobAdjusted; the tuner applies it within seconds)")
async def adjust_job(job_id: UUID, adjustment: JobAdjustment, request: Request):
    by = _sender(request, adjustment.reason)
    return _accepted(await steering.adjust_job(job_id, adjustment, _gateway(request), by))


@router.post("/{job_id}/extend", status_code=202, response_model=Accepted, responses=_command_errors,
             summary="Give a completed job more trials, its searcher continuing (publishes JobExtended)")
async def extend_job(job_id: UUID, extension: Extension, request: Request):
    by = _sender(request, extension.reason)
    return _accepted(await steering.extend_job(job_id, extension, _gateway(request), by))


@router.post("/{job_id}/fork", status_code=201, response_model=JobOut,
             responses={**_job_errors, 403: {"model": ErrorBody}, 202: {"model": Accepted}},
             summary="Create a new job from this one: its spec with changes, seeded with its trials up to a point")
async def fork_job(job_id: UUID, fork: Fork, request: Request):
    return await _created(request, await steering.fork_job(job_id, fork, _gateway(request), _sender(request, fork.reason)))


@router.post("/{job_id}/promote", status_code=202, response_model=Accepted, responses=_command_errors,
             summary="Copy a trial's model (the best by default) into the registry as the next version of a name "
                     "(publishes ModelPromoted)")
async def promote_trial(job_id: UUID, promotion: Promotion, request: Request):
    return _accepted(await promote(job_id, promotion, _gateway(request), _sender(request, promotion.reason)))


@router.get("", response_model=JobPage, responses=_errors, summary="List jobs, newest first")
async def list_jobs(
    request: Request,
    status: Annotated[JobStatus | None, Query(description=f"one of {', '.join(JOB_STATUSES)}")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
):
    return await _queries(request).list_jobs(status, limit, offset)


@router.get("/{job_id}", response_model=JobOut, responses={**_job_errors, 422: {"model": ErrorBody}},
            summary="A job, its trials and best trial; now, or as of a point of its log")
async def get_job(job_id: UUID, request: Request, as_of: Annotated[AsOf | None, Query(
        description="a log position (the job's event offset, as in log_position) or an ISO 8601 time (UTC when "
                    "it names no zone): the job exactly as the read model had it then, rebuilt from the log")] = None):
    return await _job_answer(await _queries(request).get_job(job_id, as_of))


@router.get("/{job_id}/events", response_model=list[EventOut], responses=_job_errors,
            summary="The job's audit trail, in log order")
async def get_job_events(job_id: UUID, request: Request):
    return await _queries(request).job_events(job_id)


@router.get("/{job_id}/decisions", response_model=list[DecisionOut], responses=_job_errors,
            summary="Every decision of the job's searcher, scheduler, Ray and tuner, with its inputs, in log order")
async def get_decisions(job_id: UUID, request: Request):
    # A long log is a lot of work for Python: off the event loop, as every fold and replay here.
    return await asyncio.to_thread(decisions, await _queries(request).job_events(job_id))


@router.get("/{job_id}/trials/{trial_id}/why", response_model=TrialWhy, responses=_job_errors,
            summary="Why a trial ended as it did: the decisions and commands that led there")
async def why_trial(job_id: UUID, trial_id: TrialId, request: Request):
    found = await asyncio.to_thread(explain, job_id, trial_id, await _queries(request).job_events(job_id))
    if found is None:
        raise TrialNotFound(job_id, trial_id)
    return found


@router.get("/{job_id}/what-if", response_model=WhatIfOut, responses=_job_errors,
            summary="Replay another scheduler (ASHA) over the job's recorded learning curves: the trials it "
                    "would have stopped and the trial-seconds saved")
async def what_if(
    job_id: UUID, request: Request, scheduler: Literal["asha"] = "asha",
    grace_period: Annotated[int, Query(ge=1, le=10_000)] = 1,
    reduction_factor: Annotated[float, Query(ge=1.1, le=100)] = 2,
    max_t: Annotated[int | None, Query(ge=1, le=1_000_000, description="default: the most reports of a trial")] = None,
    metric: Annotated[MetricName | None, Query(description="default: the job's metric when reported along the "
                                               "way, else eval_loss")] = None,
    mode: Literal["min", "max"] | None = None,
):
    # Ray Tune (ASHA's brackets) loads on the first what-if, not when the gateway starts.
    from service.audit.what_if import AshaOptions, what_if_asha

    queries = _queries(request)
    job, history = await queries.get_job(job_id), await queries.metric_history(job_id)
    found = await asyncio.to_thread(what_if_asha, job, history, AshaOptions(grace_period, reduction_factor, max_t),
                                    metric, mode)
    fields = {k: v for k, v in vars(found).items() if k not in ("options", "stopped")}
    return WhatIfOut(**fields, **vars(found.options), seconds_saved=found.seconds_saved,
                     saved_fraction=found.saved_fraction, stopped=[vars(s) for s in found.stopped])


@router.get("/{job_id}/history", response_model=list[TrialHistory], responses=_job_errors,
            summary="Every result each trial reported, in order (learning curves)")
async def get_metric_history(job_id: UUID, request: Request):
    return await _queries(request).metric_history(job_id)


@router.get("/{job_id}/importance", response_model=ImportanceOut, responses=_job_errors,
            summary="Hyperparameter importances over the job's completed trials (PED-ANOVA)")
async def get_importance(job_id: UUID, request: Request):
    from service.audit.importance import param_importances  # Optuna loads on the first call, not at start

    job = await _queries(request).get_job(job_id)
    # Every trial dumped, and the study fitted, off the event loop.
    found = await asyncio.to_thread(lambda: param_importances(JobSpec.model_validate(job.spec),
                                                              [t.model_dump() for t in job.trials]))
    return ImportanceOut.model_validate(found, from_attributes=True)


@compare_router.get("", response_model=list[CompareRow], responses=_job_errors,
                    summary="Two or more jobs side by side: best score, best configuration, cost")
async def compare_jobs(request: Request, jobs: Annotated[list[UUID], Query(min_length=2, max_length=20)]):
    return await _queries(request).compare(jobs)


@registry_router.get("", response_model=list[ModelOut], responses=_errors,
                     summary="Promoted models, each with its latest version")
async def list_models(request: Request):
    return await _queries(request).models()


@registry_router.get("/{name}/versions", response_model=list[ModelVersionOut], responses=_job_errors,
                     summary="Every promoted version of a model, newest first")
async def list_model_versions(name: ModelName, request: Request):
    return await _queries(request).model_versions(name)


@models_router.get("", response_model=list[BaseModelOut], responses={401: {"model": ErrorBody}},
                   summary="Models jobs can train: built-in, folders under TUNIX_MODELS_DIR, the Hugging Face cache")
async def list_base_models(request: Request):
    return await base_models(_gateway(request).folders)  # reads folders: off the loop, within a deadline


@tuners_router.get("", response_model=list[TunerOut], responses=_errors,
                   summary="Live tuners: their partitions and the jobs each one runs")
async def get_tuners(request: Request):
    settings = request.app.state.settings
    return await list_tuners(settings.kafka_bootstrap_servers, settings.tuner_group_id, _queries(request),
                             request.app.state.kafka_security)
