"""HTTP bodies of the gateway: what GET endpoints answer and what errors look like."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import BaseModel, Field, PlainValidator, TypeAdapter, ValidationError

from schemas.statuses import JobStatus, TrialStatus
from schemas.values import INT64_MAX

_TIME = TypeAdapter(datetime)


def _as_of(value: Any) -> int | datetime:
    """A log position (an offset) or a time, UTC when it names no zone; one rule when neither."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT64_MAX:
        return value
    text = value.strip() if isinstance(value, str) else ""
    if text.isascii() and text.isdigit() and int(text) <= INT64_MAX:
        return int(text)
    moment = value if isinstance(value, datetime) else None
    if moment is None and text and not _number(text):  # pydantic would read a number as a Unix time
        try:
            moment = _TIME.validate_strings(text)
        except ValidationError:
            pass
    if moment is None:
        raise ValueError("must be a log position (an offset, 0 or more) or an ISO 8601 time such as "
                         "2026-11-28T19:30:00Z")
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
    try:  # compared in UTC: 0001-01-01T00:00:00+14:00 is in year 0 there, which nothing can hold
        moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("must be a time from 0001-01-01 to 9999-12-31 once in UTC") from None
    return moment


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# `?as_of=`: the point of a job's log to read the job at (service/read/as_of.py).
AsOf = Annotated[int | datetime, PlainValidator(_as_of, json_schema_input_type=Union[
    Annotated[int, Field(ge=0, le=INT64_MAX)], datetime])]


class TrialOut(BaseModel):
    trial_id: str
    status: TrialStatus
    params: dict[str, Any]
    metrics: dict[str, float]
    iteration: int | None
    reason: str | None
    run_id: str | None
    artifact_path: str | None
    node: str | None = None  # the Ray node of its latest report
    cpu_s: float | None = None  # reserved CPU-seconds so far (cost ledger)
    gpu_s: float | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # Its job metric minus the baseline's, signed so that positive is better (mode "min": the
    # baseline's minus its own); None without a baseline or a metric.
    gain: float | None = None


class BaselineOut(BaseModel):
    """The untuned base model scored on the job's eval split once, as a trial is scored."""

    metrics: dict[str, float]
    metric: float | None  # its value of the job's metric
    error: str | None = None  # why it could not be scored
    path: str | None = None  # its folder: manifest.json and predictions.jsonl
    dataset_hash: str | None = None
    eval_size: int | None = None
    seconds: float | None = None


class JobSummary(BaseModel):
    job_id: UUID
    name: str
    status: JobStatus
    dataset_key: str
    base_model_id: str
    metric_name: str
    metric_mode: Literal["min", "max"]
    num_samples: int
    max_concurrent_trials: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    best_trial_id: str | None
    best_metric: float | None
    error: str | None
    # The tuner running the job (its latest JobClaimed), and that claim's generation.
    owner: str | None = None
    claim: int | None = None


class Cost(BaseModel):
    """Reserved resource-seconds summed over the job's trials, and its trial wall-seconds."""

    cpu_s: float
    gpu_s: float
    trial_s: float


class JobOut(JobSummary):
    spec: dict[str, Any]
    # Warm start or fork: relation, parents, fork point, parameter mapping, seed_count.
    lineage: dict[str, Any] | None = None
    cost: Cost | None = None
    best_run_id: str | None
    best_checkpoint_path: str | None
    trials: list[TrialOut]
    best_trial: TrialOut | None
    # Pretrained base models only (a built-in model starts from random weights); None until scored.
    baseline: BaselineOut | None = None
    # The offset of the job's latest event in this answer (its events share one partition):
    # `?as_of=` this position gives the same answer again, rebuilt from the log.
    log_position: int | None = None


class TunerOut(BaseModel):
    """A live member of the tuner group: the partitions Kafka assigned it and the jobs it runs."""

    tuner_id: str
    host: str
    partitions: list[int]
    jobs: list[UUID]


class MetricPoint(BaseModel):
    iteration: int | None
    occurred_at: datetime
    metrics: dict[str, float]


class TrialHistory(BaseModel):
    """Every result a trial reported, in order: learning curves, best-so-far per trial."""

    trial_id: str
    points: list[MetricPoint]


class JobPage(BaseModel):
    items: list[JobSummary]
    total: int
    limit: int
    offset: int


class EventOut(BaseModel):
    event_id: UUID
    type: str
    job_id: UUID
    occurred_at: datetime
    schema_version: int
    source: str
    correlation_id: UUID | None
    causation_id: UUID | None
    claim: int | None
    actor: str | None = None  # who sent the command, and why
    reason: str | None = None
    payload: dict[str, Any]
    kafka_partition: int
    kafka_offset: int


class DecisionOut(BaseModel):
    """One DecisionMade of the job's log (see schemas.events.DecisionMadePayload)."""

    occurred_at: datetime
    kafka_offset: int
    kind: str
    decider: str
    outcome: str
    trial_id: str | None
    summary: str
    inputs: dict[str, Any]


class TrialWhy(BaseModel):
    """Why a trial ended as it did: one sentence, and the decisions about it (and the job) in log order."""

    job_id: UUID
    trial_id: str
    status: TrialStatus
    reason: str | None
    iteration: int | None
    metrics: dict[str, float]
    verdict: str
    decisions: list[DecisionOut]


class WouldStopOut(BaseModel):
    trial_id: str
    iteration: int
    rung: float
    value: float  # the trial's metric at that report
    cutoff: float  # the rung's cutoff it fell short of
    seconds_saved: float  # trial-seconds it ran after that report


class WhatIfOut(BaseModel):
    """Another scheduler replayed over the job's recorded learning curves (service/audit/what_if.py)."""

    scheduler: Literal["asha"]
    metric: str
    mode: Literal["min", "max"]
    grace_period: int
    reduction_factor: float
    max_t: int
    trials: int
    trial_s: float  # trial-seconds the job's trials ran
    seconds_saved: float
    saved_fraction: float
    stopped: list[WouldStopOut]
    notes: list[str]


class Accepted(BaseModel):
    """Answer to a command whose event was published but whose effect is not projected yet."""

    job_id: UUID
    event_id: UUID
    event_type: str
    location: str


class FieldError(BaseModel):
    field: str
    rule: str


class ErrorBody(BaseModel):
    error: str
    message: str
    details: list[FieldError] = []


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    """200 when every check says "ok", else 503 with what each check found."""

    status: Literal["ready", "unavailable"]
    checks: dict[str, str]


class BaseModelOut(BaseModel):
    """A model jobs can name as base_model_id, as the gateway's machine sees it."""

    model_id: str
    source: Literal["built-in", "folder", "hf-cache", "gguf", "ollama", "lmstudio"]
    family: str | None
    parameters: int | None
    folder: str | None
    revision: str | None  # the Hugging Face cache snapshot
    lora_gib: float | None  # estimated memory of a LoRA run at the default batch and sequence length
    full_gib: float | None  # ... of full fine-tuning
    fits_lora: bool
    fits_full: bool
    problem: str | None  # why it cannot be trained (a broken checkpoint folder)
    quantization: str | None = None  # a GGUF file's (e.g. Q4_K_M); None for other sources


class ModelVersionOut(BaseModel):
    """One promoted version of a named model (artifacts/models/{name}/{version}/)."""

    name: str
    version: int
    stage: str
    job_id: UUID
    trial_id: str
    path: str
    source_path: str
    metric_name: str
    metric: float | None
    params: dict[str, Any]
    promoted_at: datetime
    actor: str | None
    reason: str | None


class ModelOut(BaseModel):
    name: str
    versions: int
    latest: ModelVersionOut


class ImportanceOut(BaseModel):
    """How much each searched hyperparameter explains the metric over the job's trials."""

    method: str
    trials_used: int
    trials_skipped: int
    importances: dict[str, float]
    note: str | None = None


class CompareRow(BaseModel):
    job_id: UUID
    name: str
    status: JobStatus
    metric_name: str
    metric_mode: Literal["min", "max"]
    trials: int
    best_metric: float | None
    best_trial_id: str | None
    best_params: dict[str, Any]
    cost: Cost
