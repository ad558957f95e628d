"""Where a job's starting knowledge came from: the parent trials that seeded its searcher, how
each parent parameter was carried over, and the fork point. Recorded in its JobCreated, so an
auditor sees exactly what the searcher was told, and replay never re-reads the parents."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.values import Scalar, Text


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SeedTrial(_Record):
    """One completed parent trial, in this job's parameter names, with its score."""

    job_id: UUID
    trial_id: str = Field(max_length=200)
    params: dict[Text, Scalar]
    score: float


class ParameterMapping(_Record):
    """How one parameter of one parent was carried over: kept as it was, taken from the
    parent's fixed value, or dropped (with the trials it cost), never silently."""

    job_id: UUID
    parameter: str = Field(max_length=100)
    outcome: Literal["kept", "renamed", "from_fixed", "dropped"]
    reason: str = Field(max_length=2000)


class Lineage(_Record):
    relation: Literal["warm_start", "fork"]
    parents: list[UUID] = Field(min_length=1)
    # A fork's point: the parent's first N ended trials, in log order, or those ended at or
    # before a Kafka offset of its log (None: all of them).
    at_trials: int | None = Field(default=None, ge=0, le=2**63 - 1)
    at_offset: int | None = Field(default=None, ge=0, le=2**63 - 1)
    seeds: list[SeedTrial] = Field(default_factory=list)
    mapping: list[ParameterMapping] = Field(default_factory=list)
