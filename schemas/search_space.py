"""The search space a job samples its trials from: one typed distribution per hyperparameter.

Each type checks its own rule, so a bad space is rejected with the parameter and the rule named.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.values import Int64, scalar_problem

# The longest text value a spec may give a hyperparameter (a choice, a grid point, a fixed value).
MAX_VALUE_TEXT = 1000


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _Range(_Param):
    min: float
    max: float

    @model_validator(mode="after")
    def _min_below_max(self):
        if not self.min < self.max:
            raise ValueError(f"min ({self.min}) must be < max ({self.max})")
        return self


class _Values(_Param):
    values: list[Any] = Field(min_length=1, max_length=1000)

    @field_validator("values")
    @classmethod
    def _scalars_only(cls, values: list[Any]) -> list[Any]:
        for i, value in enumerate(values):
            if not isinstance(value, (bool, int, float, str)):
                raise ValueError(
                    f"{cls.__name__.lower()} values must be numbers, "
                    f"strings or booleans; item {i} is {type(value).__name__}"
                )
            if (problem := scalar_problem(value)) is not None:
                raise ValueError(f"item {i}: {problem}")
            if isinstance(value, str) and len(value) > MAX_VALUE_TEXT:
                raise ValueError(f"item {i}: text values must be at most {MAX_VALUE_TEXT} characters")
        return values


class Choice(_Values):
    type: Literal["choice"]


class Grid(_Values):
    """Every value is tried (Ray's grid_search): with num_samples N, each value N times."""

    type: Literal["grid"]


class Uniform(_Range):
    type: Literal["uniform"]


class LogUniform(_Range):
    type: Literal["loguniform"]

    @model_validator(mode="after")
    def _positive_min(self):
        if self.min <= 0:
            raise ValueError(f"loguniform min must be > 0, got {self.min}")
        return self


class QUniform(_Range):
    type: Literal["quniform"]
    q: float = Field(gt=0)


class QLogUniform(LogUniform):
    type: Literal["qloguniform"]  # type: ignore[assignment]
    q: float = Field(gt=0)


class Normal(_Param):
    type: Literal["normal"]
    mean: float
    sd: float = Field(gt=0)


class RandInt(_Range):
    """Integers in [min, max): Ray Tune's convention, max excluded."""

    type: Literal["randint"]
    min: Int64  # type: ignore[assignment]
    max: Int64  # type: ignore[assignment]


ParamSpec = Annotated[
    Union[Choice, Grid, Uniform, LogUniform, QUniform, QLogUniform, Normal, RandInt],
    Field(discriminator="type"),
]
PARAM_TYPES = ("choice", "grid", "uniform", "loguniform", "quniform", "qloguniform", "normal", "randint")
