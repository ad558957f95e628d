"""Bodies of the commands that steer a job after it was created: adjust it while it runs,
extend it once it completed, fork it, promote its best model. Each becomes one event (see
schemas/events.py) carrying who sent it (`actor`) and why (`reason`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from schemas.job_spec import MAX_CONCURRENT_TRIALS, MAX_NUM_SAMPLES

Reason = str | None


def _integral(value: Any) -> Any:
    """JSON Schema's integer includes 57.0; a string stays refused (the count is strict)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Count = Annotated[int, BeforeValidator(_integral)]
REASON = Field(default=None, max_length=2000, description="why, in words: kept on the job's audit trail")
MODEL_NAME = r"^[a-z0-9][a-z0-9._-]{0,99}$"


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
    changes: dict[str, Any] = Field(default_factory=dict, max_length=30)
    reason: Reason = REASON


class Promotion(_Body):
    """POST .../promote: copy a trial's model into artifacts/models/{name}/{version}/."""

    name: str = Field(pattern=MODEL_NAME, description="registry name: lower-case letters, digits, . _ -")
    trial_id: str | None = Field(default=None, min_length=1, max_length=200,
                                 description="the job's best trial when unset")
    stage: str = Field(default="candidate", pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    reason: Reason = REASON
