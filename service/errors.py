"""Why a command was refused; app/errors.py maps each to its HTTP answer in one place."""

from __future__ import annotations

from typing import NamedTuple
from uuid import UUID


class Problem(NamedTuple):
    field: str  # where in the request, e.g. "search_space.lr"
    rule: str  # what it broke, in words


class CommandRefused(Exception):
    """Nothing was published."""


class InvalidJob(CommandRefused):
    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(f"{p.field}: {p.rule}" for p in problems))
        self.problems = problems


class JobNotFound(CommandRefused):
    def __init__(self, job_id: UUID, when: str = ""):
        super().__init__(f"no tuning job {job_id}" + (f" {when}" if when else ""))


class TrialNotFound(CommandRefused):
    def __init__(self, job_id: UUID, trial_id: str):
        super().__init__(f"tuning job {job_id} has no trial {trial_id}")


class JobConflict(CommandRefused):
    """The command does not apply to the job in its current status."""


class ModelNotFound(CommandRefused):
    def __init__(self, name: str):
        super().__init__(f"no promoted model named {name}")
