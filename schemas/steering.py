"""Bodies of the commands that steer a job after it was created: adjust it while it runs,
extend it once it completed, fork it, promote its best model. Each becomes one event (see
schemas/events.py) carrying who sent it (`actor`) and why (`reason`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from schemas.bounded import JsonValue, bounded_text
from schemas.job_spec import MAX_CONCURRENT_TRIALS, MAX_NUM_SAMPLES, JobSpec

# Every command's reason goes onto its event's envelope, which holds at most this much.
MAX_REASON = 2000
# Text the API takes is text every consumer can store (schemas/values.py): no NUL, valid UTF-8.
Reason = bounded_text(MAX_REASON) | None
TrialId = bounded_text(200, min_length=1)


def _integral(value: Any) -> Any:
    """JSON Schema's integer includes 57.0; a string stays refused (the count is strict)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Count = Annotated[int, BeforeValidator(_integral)]
REASON = Field(default=None, description="why, in words: kept on the job's audit trail")
MODEL_NAME = r"^[a-z0-9][a-z0-9._-]{0,99}$"


# A fork's changes are spec fields, checked again as a whole spec; bounded here (storable JSON,
# known fields) so a refusal names the change (`changes.x`) and nothing the log cannot hold gets far.
_FORKABLE = tuple(name for name in JobSpec.model_fields if name != "warm_start")  # the fork sets warm_start


def _spec_field(name: str) -> str:
    if name not in _FORKABLE:
        raise ValueError(f"{name[:100]!r} is not a job spec field that a fork may change "
                         f"(one of {', '.join(_FORKABLE)})")
    return name


SpecField = Annotated[str, AfterValidator(_spec_field)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, allow_inf_nan=False)


class CommandNote(_Body):
    """The optional body of start and cancel."""

    reason: Reason = REASON


_ADJUSTABLE = ("max_concurrent_trials", "num_samples", "time_budget_s", "max_failed_trials")


class JobAdjustment(_Body):
    """What PATCH /api/tuning/jobs/{id} may change in a created or running job; a field left
    out is unchanged, `time_budget_s: null` removes the budget."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": [name]} for name in _ADJUSTABLE]})

    # Counts are never null (the schema says so); left out, they are unchanged.
    max_concurrent_trials: Count = Field(default=None, ge=1, le=MAX_CONCURRENT_TRIALS, strict=True)
    num_samples: Count = Field(default=None, ge=1, le=MAX_NUM_SAMPLES, strict=True)
    time_budget_s: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    max_failed_trials: Count = Field(default=None, ge=0, le=MAX_NUM_SAMPLES, strict=True)
    reason: Reason = REASON

    @model_validator(mode="after")
    def _changes_something(self):
        if not self.changes():
            raise ValueError("name at least one of max_concurrent_trials, num_samples, time_budget_s, "
                             "max_failed_trials")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set if name != "reason"}


class Extension(_Body):
    """POST .../extend: more trials for a completed job, from the same searcher state."""

    num_samples: Count = Field(ge=1, le=MAX_NUM_SAMPLES, strict=True, description="trials to add")
    reason: Reason = REASON


class Fork(_Body):
    """POST .../fork: a new job seeded with the parent's trials up to a point, with changes."""

    at_trials: Count | None = Field(default=None, ge=0, le=MAX_NUM_SAMPLES, strict=True,
                                  description="seed with the parent's first N ended trials (all when unset)")
    at_offset: Count | None = Field(default=None, ge=0, le=2**63 - 1, strict=True,
                                    description="or with the trials whose end is on the log at or before this offset")
    # Spec fields to change (search_space, scheduler, search_algorithm, num_samples, name, ...).
    changes: dict[SpecField, JsonValue] = Field(default_factory=dict, max_length=30, json_schema_extra={
        "propertyNames": {"enum": list(_FORKABLE)}})
    reason: Reason = REASON


class Promotion(_Body):
    """POST .../promote: copy a trial's model into artifacts/models/{name}/{version}/."""

    name: str = Field(pattern=MODEL_NAME, description="registry name: lower-case letters, digits, . _ -")
    trial_id: TrialId | None = Field(default=None, description="the job's best trial when unset")
    stage: str = Field(default="candidate", pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    reason: Reason = REASON
