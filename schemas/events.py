"""The event contract: a versioned envelope around one typed payload per event type.

Producers (the gateway, the tuner, other systems) publish these JSON documents to the events
topic keyed by job_id; the projector and auditors read them back with `parse_event`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from schemas.job_spec import ADJUSTABLE_FIELDS, JobSpec
from schemas.lineage import Lineage
from schemas.statuses import TrialStatus
from schemas.values import Scalar, Text, Timestamp, storable_text

SCHEMA_VERSION = 1
# Limits match the read model's columns, so a valid event can always be projected.
_INT4_MAX = 2**31 - 1


_FROM_LOG = "from-log"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class JobCreatedPayload(_Payload):
    spec: JobSpec
    lineage: Lineage | None = None  # parents that seeded its searcher (warm start, fork)


class JobStartedPayload(_Payload):
    pass


# Free text on the log: what the gateway's command bodies allow (schemas/steering.py), and an error's cause.
Reason = Annotated[Text, Field(max_length=2000)]


class JobCancelRequestedPayload(_Payload):
    reason: Reason | None = None


class TrialUpdatedPayload(_Payload):
    trial_id: str = Field(min_length=1, max_length=200)
    status: TrialStatus
    params: dict[Text, Scalar] = Field(default_factory=dict)
    metrics: dict[Text, float] = Field(default_factory=dict)
    iteration: int | None = Field(default=None, ge=0, le=_INT4_MAX)
    reason: Annotated[Text, Field(max_length=10_000)] | None = None
    run_id: str | None = Field(default=None, max_length=200)
    artifact_path: str | None = Field(default=None, max_length=4096)
    node: str | None = Field(default=None, max_length=200)  # the Ray node it ran on
    # Resource-seconds reserved so far: wall time run (over every restart) times its request.
    cpu_s: float | None = Field(default=None, ge=0)
    gpu_s: float | None = Field(default=None, ge=0)


class JobAdjustedPayload(_Payload):
    """The spec fields changed (a null time_budget_s removes the budget), and their values before."""

    changes: dict[str, Scalar | None] = Field(min_length=1)
    previous: dict[str, Scalar | None] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _adjustable_fields_only(self):
        # Whether the adjusted spec is valid depends on the job: service.read.projection.refusal checks it.
        for changes in (self.changes, self.previous):
            if not set(changes) <= set(ADJUSTABLE_FIELDS):
                unknown = ", ".join(sorted(set(changes) - set(ADJUSTABLE_FIELDS)))
                raise ValueError(f"{unknown}: an adjustment changes only {', '.join(ADJUSTABLE_FIELDS)}")
        return self


class JobExtendedPayload(_Payload):
    num_samples_added: int = Field(ge=1)
    # The job as it ends up: the tuner dropped the finished job, it resumes from this.
    spec: JobSpec
    claim: int | None = Field(default=None, ge=1, le=_INT4_MAX)  # the job's latest claim, to fence after it


class ModelPromotedPayload(_Payload):
    name: str = Field(max_length=100)
    version: int = Field(ge=1, le=_INT4_MAX)
    stage: str = Field(max_length=40)
    trial_id: str = Field(max_length=200)
    path: str = Field(max_length=4096)  # artifacts/models/{name}/{version}
    source_path: str = Field(max_length=4096)  # the trial's run folder it was copied from
    metric_name: str = Field(max_length=100)
    metric: float | None
    params: dict[Text, Scalar] = Field(default_factory=dict)


DecisionKind = Literal["suggestion", "rung", "exploit", "failure", "budget", "packing"]
DECISION_KINDS: tuple[str, ...] = DecisionKind.__args__


class DecisionMadePayload(_Payload):
    """One decision of the job's searcher, scheduler, Ray or the tuner, with what it used."""

    kind: DecisionKind
    # tpe | random | grid (suggestion); ASHA | HyperBand (rung); PBT (exploit); Ray (failure);
    # tuner (budget, packing)
    decider: str = Field(min_length=1, max_length=100)
    # suggest | continue | stop | exploit | retry | fail | stop_job | pack | unpacked
    outcome: str = Field(min_length=1, max_length=100)
    trial_id: str | None = Field(default=None, max_length=200)  # None: a decision about the whole job
    summary: str = Field(max_length=10_000)  # one sentence for people (`jobs why`, the timeline)
    inputs: dict[Text, Any] = Field(default_factory=dict)  # JSON: what the decision was made from


class JobClaimedPayload(_Payload):
    tuner_id: str = Field(min_length=1, max_length=200)
    # Counts up by one with every claim of the job: the fence against an earlier owner.
    generation: int = Field(ge=1, le=_INT4_MAX)
    # Seconds of the time budget spent under earlier claims, as this owner counted them.
    budget_spent_s: float = Field(default=0.0, ge=0)


class JobCompletedPayload(_Payload):
    best_trial_id: str | None = Field(max_length=200)
    metric_name: str = Field(max_length=100)
    best_metric: float | None
    best_params: dict[Text, Scalar] = Field(default_factory=dict)
    best_run_id: str | None = Field(default=None, max_length=200)
    best_checkpoint_path: str | None = Field(default=None, max_length=4096)


class BaselineEvaluatedPayload(_Payload):
    """The untuned base model scored on the job's eval split (training/baseline.py); on failure,
    no metrics and the error."""

    metrics: dict[Annotated[Text, Field(max_length=100)], float] = Field(default_factory=dict, max_length=100)
    error: Annotated[Text, Field(max_length=10_000)] | None = None
    path: str | None = Field(default=None, max_length=4096)  # its folder: manifest.json, predictions.jsonl
    dataset_hash: str | None = Field(default=None, max_length=200)  # the eval split it was scored on
    eval_size: int | None = Field(default=None, ge=0, le=_INT4_MAX)
    seconds: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _metrics_or_error(self):
        if not self.metrics and self.error is None:
            raise ValueError("a baseline carries metrics, or the error that stopped it")
        return self


class JobFailedPayload(_Payload):
    error: Annotated[Text, Field(max_length=10_000)]


class JobCancelledPayload(_Payload):
    reason: Reason | None = None


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID = Field(default_factory=uuid4)
    job_id: UUID
    occurred_at: Timestamp = Field(default_factory=utc_now)
    schema_version: Literal[1] = SCHEMA_VERSION
    source: str = Field(min_length=1, max_length=200)
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    # The generation of the JobClaimed under which a tuner published this event. The projector
    # ignores an event whose claim is no longer the job's latest one: its tuner was replaced.
    claim: int | None = Field(default=None, ge=1, le=_INT4_MAX)
    # Who sent the command (the name bound to the API token; "anonymous" without tokens) and why.
    actor: str | None = Field(default=None, max_length=200)
    reason: Reason | None = None

    @model_validator(mode="before")
    @classmethod
    def _identity_given_on_the_wire(cls, data: Any, info: ValidationInfo) -> Any:
        # Defaults serve producers building events in code. An event read from the log must
        # carry its own id and time, or every redelivery and replay would look like a new event.
        if info.context == _FROM_LOG and isinstance(data, dict):
            for field in ("event_id", "occurred_at"):
                if field not in data:
                    raise ValueError(f"{field} is required on an event in the log")
        return data

    def key(self) -> bytes:
        return str(self.job_id).encode()


class JobCreated(_Envelope):
    """A tuning job was defined: its spec is the payload. Nothing runs until its JobStarted;
    every other event of the job must come after it on the job's partition."""

    type: Literal["JobCreated"] = "JobCreated"
    payload: JobCreatedPayload


class JobStarted(_Envelope):
    type: Literal["JobStarted"] = "JobStarted"
    payload: JobStartedPayload = JobStartedPayload()


class JobCancelRequested(_Envelope):
    """Someone asked the job to stop: a created job is cancelled at once, a running one stops
    its trials (the tuner then publishes JobCancelled)."""

    type: Literal["JobCancelRequested"] = "JobCancelRequested"
    payload: JobCancelRequestedPayload = JobCancelRequestedPayload()


class JobClaimed(_Envelope):
    """A tuner took ownership of a started job (its partition was assigned to it). Every
    event a tuner publishes for the job carries the generation it claimed; a later claim
    supersedes it, and the earlier owner's events after that are ignored (fencing)."""

    type: Literal["JobClaimed"] = "JobClaimed"
    payload: JobClaimedPayload

    @model_validator(mode="after")
    def _claims_under_its_own_generation(self):
        # Fencing compares claims: one without its generation on the envelope could roll it back.
        if self.claim != self.payload.generation:
            raise ValueError(f"claim must equal payload.generation ({self.payload.generation}), got {self.claim}")
        return self


class TrialUpdated(_Envelope):
    """A trial was added, started, reported a result, lost its worker or owner (stale),
    was handed to another tuner (preempted), or ended (completed, failed, stopped)."""

    type: Literal["TrialUpdated"] = "TrialUpdated"
    payload: TrialUpdatedPayload


class JobAdjusted(_Envelope):
    """Someone changed a created or running job's concurrency, trial count, time budget or
    failure allowance; the tuner applies it to the running experiment without restarting trials."""

    type: Literal["JobAdjusted"] = "JobAdjusted"
    payload: JobAdjustedPayload


class JobExtended(_Envelope):
    """A completed job gets more trials: it runs again, its searcher continuing where it stopped."""

    type: Literal["JobExtended"] = "JobExtended"
    payload: JobExtendedPayload


class ModelPromoted(_Envelope):
    """A trial's model was copied into the registry as the next version of a named model."""

    type: Literal["ModelPromoted"] = "ModelPromoted"
    payload: ModelPromotedPayload


class DecisionMade(_Envelope):
    """A searcher suggested a configuration, a scheduler stopped, continued or exploited a
    trial, Ray retried or failed one, or the tuner stopped the job on its budget: the inputs
    are on the log with the decision (`tunix-tune jobs why`, `tunix-tune audit verify`)."""

    type: Literal["DecisionMade"] = "DecisionMade"
    payload: DecisionMadePayload


class BaselineEvaluated(_Envelope):
    """The job's base model, untuned, was scored once on the job's eval split with the trials'
    metrics: the baseline every trial's gain is measured against (pretrained models only)."""

    type: Literal["BaselineEvaluated"] = "BaselineEvaluated"
    payload: BaselineEvaluatedPayload


class JobCompleted(_Envelope):
    type: Literal["JobCompleted"] = "JobCompleted"
    payload: JobCompletedPayload


class JobFailed(_Envelope):
    """The job cannot go on: more trials failed than max_failed_trials, none reported the
    metric, or the experiment itself raised. Terminal, like JobCompleted and JobCancelled."""

    type: Literal["JobFailed"] = "JobFailed"
    payload: JobFailedPayload


class JobCancelled(_Envelope):
    type: Literal["JobCancelled"] = "JobCancelled"
    payload: JobCancelledPayload = JobCancelledPayload()


Event = Annotated[
    Union[
        JobCreated,
        JobStarted,
        JobCancelRequested,
        JobClaimed,
        TrialUpdated,
        JobAdjusted,
        JobExtended,
        ModelPromoted,
        DecisionMade,
        BaselineEvaluated,
        JobCompleted,
        JobFailed,
        JobCancelled,
    ],
    Field(discriminator="type"),
]
EVENT_CLASSES = (
    JobCreated, JobStarted, JobCancelRequested, JobClaimed, TrialUpdated, JobAdjusted, JobExtended, ModelPromoted,
    DecisionMade, BaselineEvaluated, JobCompleted, JobFailed, JobCancelled,
)
EVENT_TYPES = tuple(cls.__name__ for cls in EVENT_CLASSES)
# Who puts each event on the log in this project (other systems may publish any of them).
PUBLISHED_BY = {
    "JobCreated": "the gateway", "JobStarted": "the gateway", "JobCancelRequested": "the gateway",
    "JobClaimed": "the tuner", "TrialUpdated": "the tuner's Ray callback", "JobCompleted": "the tuner",
    "JobAdjusted": "the gateway", "JobExtended": "the gateway", "ModelPromoted": "the gateway",
    "DecisionMade": "the tuner (its searcher, scheduler and Ray callback)",
    "BaselineEvaluated": "the tuner",
    "JobFailed": "the tuner",
    "JobCancelled": "the tuner",
}
_EVENT = TypeAdapter(Event)


def superseded(event: Event, latest_claim: int | None) -> bool:
    """The fencing rule, shared by every reader of the log: an event published under a claim
    other than the job's latest one (`latest_claim`, from the JobClaimed events before it)
    came from a tuner that was replaced. A JobClaimed supersedes only a lower generation.
    Events without a claim (the gateway's, other systems') are never superseded."""
    if event.claim is None:
        return False
    if isinstance(event, JobClaimed):
        return latest_claim is not None and event.payload.generation <= latest_claim
    return event.claim != latest_claim


def parse_event(raw: bytes | str) -> Event:
    """Validate one message body; raises pydantic.ValidationError naming the bad field."""
    event = _EVENT.validate_json(raw, context=_FROM_LOG)
    if (b"\\u0000" if isinstance(raw, bytes) else "\\u0000") in raw:  # rare: look closer
        _refuse_nul(event.model_dump(mode="json"))
    return event


def _refuse_nul(value: Any, loc: tuple = ()) -> None:
    """A NUL anywhere in an event (a key, free-form params) would fail the read model's write."""
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, loc)
            _refuse_nul(item, (*loc, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _refuse_nul(item, (*loc, i))
    elif isinstance(value, str):
        try:
            storable_text(value)
        except ValueError as exc:
            raise ValidationError.from_exception_data("Event", [{
                "type": PydanticCustomError("storable_text", str(exc)), "loc": loc, "input": value}]) from None


def serialize_event(event: Event) -> bytes:
    return event.model_dump_json().encode()
