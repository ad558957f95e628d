"""A tuning job as a user defines it: what to train, what to search, what to optimise."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from schemas.grid import GridPoints
from schemas.search_space import MAX_VALUE_TEXT, Choice, Grid, ParamSpec
from schemas.values import Scalar, Text

MAX_NUM_SAMPLES = 1000
MAX_CONCURRENT_TRIALS = 64
# What an adjustment (PATCH, JobAdjusted) may change in a created or running job.
ADJUSTABLE_FIELDS = ("max_concurrent_trials", "num_samples", "time_budget_s", "max_failed_trials")
# Trials a job may plan: num_samples x its grid points. Each planned trial becomes a Ray trial,
# a row and a few events per change in the read model, and a line of the job's answer (GET
# returns every trial); 10x MAX_NUM_SAMPLES keeps that in the same range as the largest
# non-grid job while allowing a 10-point grid at the full sample count or a 100 x 100 grid once.
MAX_PLANNED_TRIALS = 10_000
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_RESOURCE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]{0,99}$")
# A dataset key is one folder name under the datasets folder: no "/", no leading "." (so no
# "..", no absolute path); the same pattern as training.datasets.DATASET_KEY.
DATASET_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
# A parameter's name where it is not a searched one (fixed values, a warm start's renames): any
# storable text, bounded like the searched ones' names.
ParamName = Annotated[Text, Field(min_length=1, max_length=64)]


def _short_value(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE_TEXT:
        raise ValueError(f"text values must be at most {MAX_VALUE_TEXT} characters")
    return value


SpecValue = Annotated[Scalar, AfterValidator(_short_value)]


class Resources(BaseModel):
    """What one trial reserves on the Ray cluster."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cpu: float = Field(default=1.0, gt=0, le=256)
    gpu: float = Field(default=0.0, ge=0, le=16)  # fractions share a GPU between trials
    # Ray custom resources a trial needs, e.g. {"a100": 1} or {"node:zone-b": 0.01}.
    custom: dict[str, float] = Field(default_factory=dict, max_length=20)

    @field_validator("custom")
    @classmethod
    def _custom_resources(cls, custom: dict[str, float]) -> dict[str, float]:
        for name, amount in custom.items():
            if not _RESOURCE_NAME.fullmatch(name) or name.upper() in ("CPU", "GPU", "MEMORY", "OBJECT_STORE_MEMORY"):
                raise ValueError(f"custom resource {name!r} must be a Ray resource name (letters, digits, "
                                 "._:-/; not CPU, GPU or memory, which have their own fields)")
            if not (0 < amount <= 10_000) or amount != amount:
                raise ValueError(f"custom resource {name!r} must ask for more than 0 and at most 10000")
        return custom

    def ray_request(self) -> dict[str, float]:
        """What Ray reserves for one trial."""
        return {"CPU": self.cpu, "GPU": self.gpu, **self.custom}


class CostBudget(BaseModel):
    """Reserved resource-seconds a job may spend, summed over its trials (wall time a trial ran
    times what it reserved); the job stops its trials once either is spent."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cpu_s: float | None = Field(default=None, gt=0, le=1e9)
    gpu_s: float | None = Field(default=None, gt=0, le=1e9)


MAX_PACK_SLOTS = 16


class Packing(BaseModel):
    """Run the job's LoRA trials as the slots of shared programs (training/packed.py): up to
    `max_trials` at once share one frozen base model. "auto": the tuner picks the count (4 on
    CPU, 8 on a GPU), never more than max_concurrent_trials. A job whose trials cannot share a
    base (full fine-tuning, differing batch size, sequence length or LoRA targets) runs
    unpacked, and its decision log says why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_trials: Annotated[int, Field(strict=True)] | Literal["auto"] = "auto"

    @field_validator("max_trials")
    @classmethod
    def _slot_count(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 2 <= value <= MAX_PACK_SLOTS:
            raise ValueError(f"max_trials must be \"auto\" or an integer from 2 to {MAX_PACK_SLOTS}")
        return value


class WarmStart(BaseModel):
    """Parent jobs whose completed trials seed this job's searcher (TPE learns from them as
    completed trials; random and grid skip configurations they tried)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    jobs: list[UUID] = Field(min_length=1, max_length=50)
    # Only the best `top_k` completed trials of each parent (all of them when unset).
    top_k: int | None = Field(default=None, ge=1, le=MAX_NUM_SAMPLES, strict=True)
    # Only each parent's first `at_trials` ended trials, in the order they ended (a fork point)...
    at_trials: int | None = Field(default=None, ge=0, le=MAX_NUM_SAMPLES, strict=True)
    # ... or only the trials whose end is on the parent's log at or before this Kafka offset.
    at_offset: int | None = Field(default=None, ge=0, le=2**63 - 1, strict=True)
    # Parent parameter name -> this job's name, for a parameter that was renamed.
    rename: dict[ParamName, ParamName] = Field(default_factory=dict, max_length=50)


class JobSpec(BaseModel):
    # Non-finite numbers are refused here, not downstream: JSON has no NaN or Infinity.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, allow_inf_nan=False)

    name: Text = Field(min_length=1, max_length=200)
    dataset_key: Text = Field(min_length=1, max_length=200, pattern=DATASET_KEY_PATTERN)
    base_model_id: Text = Field(min_length=1, max_length=500)
    metric_name: Text = Field(min_length=1, max_length=100)
    metric_mode: Literal["min", "max"]
    num_samples: int = Field(ge=1, le=MAX_NUM_SAMPLES, strict=True)
    max_concurrent_trials: int = Field(ge=1, le=MAX_CONCURRENT_TRIALS, strict=True)
    search_space: dict[str, ParamSpec] = Field(min_length=1, max_length=50)
    # Hyperparameters every trial gets as they are (not searched).
    fixed_params: dict[ParamName, SpecValue] = Field(default_factory=dict, max_length=50)
    search_algorithm: Literal["random", "grid", "tpe"] = "random"
    scheduler: Literal["fifo", "asha", "hyperband", "pbt"] = "fifo"
    resources_per_trial: Resources = Field(default_factory=Resources)
    # A failing trial is recorded and the job goes on, until more than this many have failed.
    max_failed_trials: int = Field(default=0, ge=0, le=MAX_NUM_SAMPLES, strict=True)
    # A trial that fails (its worker or node died, or it raised) runs again from its last
    # checkpoint this many times before it counts as failed.
    max_trial_retries: int = Field(default=1, ge=0, le=10, strict=True)
    # A running trial renews its lease with every report; one silent for this long is presumed
    # hung: it is stopped and retried (stale) or failed by max_trial_retries.
    trial_lease_s: float = Field(default=1800, gt=0, le=7 * 24 * 3600)
    # Wall time the job may spend running, summed over every tuner that ran it.
    time_budget_s: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    # The searcher's seed; without one the tuner derives it from the job id (the suggestion
    # decisions on the log say which), so every job's search can be replayed (audit verify).
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, strict=True)
    # TPE: trials sampled at random before it models the results (default 10, or 3-10 with a warm start).
    startup_trials: int | None = Field(default=None, ge=1, le=1000, strict=True)
    budget: CostBudget | None = None
    warm_start: WarmStart | None = None
    packing: Packing | None = None

    @field_validator("search_space")
    @classmethod
    def _param_names_are_identifiers(cls, space: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        for name in space:
            if not _PARAM_NAME.fullmatch(name):
                raise ValueError(
                    f"parameter name {name!r} must be an identifier "
                    "(letters, digits, underscore; at most 64 characters)"
                )
        return space

    @model_validator(mode="after")
    def _startup_trials_for_tpe(self):
        if self.startup_trials is not None and self.search_algorithm != "tpe":
            raise ValueError("startup_trials applies to search_algorithm tpe only")
        return self

    @model_validator(mode="after")
    def _fixed_and_searched_apart(self):
        both = sorted(set(self.fixed_params) & set(self.search_space))
        if both:
            raise ValueError(f"fixed_params and search_space both set {', '.join(both)}; set each once")
        return self

    @model_validator(mode="after")
    def _planned_trials_capped(self):
        # Multiplied axis by axis with an early exit: 1000^50 points are refused after a few
        # multiplications, and nothing is ever listed.
        points = 1
        for values in self._grid_axes().values():
            points *= len(values)
            if points > MAX_PLANNED_TRIALS:
                sizes = self._grid_sizes()
                raise _field_error("search_space", sizes, f"the grid has more than {MAX_PLANNED_TRIALS} points "
                                   f"({sizes} values); a job plans at most {MAX_PLANNED_TRIALS} trials "
                                   "(num_samples x grid points)")
        if self.num_samples * points > MAX_PLANNED_TRIALS:
            raise _field_error("num_samples", self.num_samples,
                               f"must be at most {MAX_PLANNED_TRIALS // points}: {self.num_samples} x {points} grid "
                               f"points would plan {self.num_samples * points} trials; a job plans at most "
                               f"{MAX_PLANNED_TRIALS} (num_samples x grid points)")
        return self

    def perturbed_params(self) -> list[str]:
        """What a PBT scheduler changes in running trials: every searched parameter except
        grids (a grid value is a trial's identity). Empty for other schedulers."""
        if self.scheduler != "pbt":
            return []
        return [name for name, param in self.search_space.items() if not isinstance(param, Grid)]

    def _grid_axes(self) -> dict[str, list]:
        return {name: p.values for name, p in self.search_space.items()
                if isinstance(p, Grid) or (isinstance(p, Choice) and self.search_algorithm == "grid")}

    def _grid_sizes(self) -> str:
        return " x ".join(f"{name} {len(values)}" for name, values in self._grid_axes().items())

    def grid_points(self) -> GridPoints:
        """Every combination of grid values (choices too, with the grid search algorithm), in
        search_space order, the last parameter varying fastest (itertools.product's order): a
        grid job runs each num_samples times. One point, {}, when nothing is a grid. A lazy view
        (count, point(i), iteration): never a list, whatever the grid's size."""
        return GridPoints(self._grid_axes())

    def planned_trials(self) -> int:
        return self.num_samples * self.grid_points().count

    def adjusted(self, changes: dict[str, Any]) -> JobSpec:
        """This spec with `changes` (a JobAdjusted's), validated again as a whole: every rule
        (bounds, the planned-trial cap, no unknown field) holds for the result, which
        model_copy(update=...) does not check. Raises pydantic's ValidationError."""
        return JobSpec.model_validate({**self.model_dump(), **changes})


def _field_error(field: str, value: Any, rule: str) -> ValidationError:
    """A model rule's error located at one field, so a 422 names the field (a plain ValueError
    in a model validator is located at the whole body)."""
    error = PydanticCustomError("planned_trials", rule)
    return ValidationError.from_exception_data("JobSpec", [InitErrorDetails(type=error, loc=(field,), input=value)])
