"""A tuning job as a user defines it: what to train, what to search, what to optimise."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.search_space import ParamSpec

MAX_NUM_SAMPLES = 1000
MAX_CONCURRENT_TRIALS = 64
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    dataset_key: str = Field(min_length=1, max_length=200)
    base_model_id: str = Field(min_length=1, max_length=500)
    metric_name: str = Field(min_length=1, max_length=100)
    metric_mode: Literal["min", "max"]
    num_samples: int = Field(ge=1, le=MAX_NUM_SAMPLES, strict=True)
    max_concurrent_trials: int = Field(ge=1, le=MAX_CONCURRENT_TRIALS, strict=True)
    search_space: dict[str, ParamSpec] = Field(min_length=1, max_length=50)

    @field_validator("search_space")
    @classmethod
    def _param_names_are_identifiers(cls, space: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        for name in space:
            if not _PARAM_NAME.match(name):
                raise ValueError(
                    f"parameter name {name!r} must be an identifier "
                    "(letters, digits, underscore; at most 64 characters)"
                )
        return space
