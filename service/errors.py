"""Why a command was refused; app/errors.py maps each to its HTTP answer in one place."""

from __future__ import annotations

from contextlib import contextmanager
from typing import NamedTuple
from uuid import UUID

from pydantic import ValidationError


class Problem(NamedTuple):
    field: str  # where in the request, e.g. "search_space.lr"
    rule: str  # what it broke, in words


class CommandRefused(Exception):
    """Nothing was published. An error with arguments of its own names them in `_arguments`, so
    a pickled copy (a process pool, Ray) is rebuilt from them, not from its message."""

    _arguments: tuple[str, ...] = ()

    def __reduce__(self):
        if not self._arguments:
            return super().__reduce__()
        return type(self), tuple(getattr(self, name) for name in self._arguments), self.__dict__


class InvalidJob(CommandRefused):
    _arguments = ("problems",)

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(f"{p.field}: {p.rule}" for p in problems))
        self.problems = problems


class JobNotFound(CommandRefused):
    _arguments = ("job_id", "when")

    def __init__(self, job_id: UUID, when: str = ""):
        super().__init__(f"no tuning job {job_id}" + (f" {when}" if when else ""))
        self.job_id, self.when = job_id, when


class TrialNotFound(CommandRefused):
    _arguments = ("job_id", "trial_id")

    def __init__(self, job_id: UUID, trial_id: str):
        super().__init__(f"tuning job {job_id} has no trial {trial_id}")
        self.job_id, self.trial_id = job_id, trial_id


class JobConflict(CommandRefused):
    """The command does not apply to the job in its current status."""


class ModelNotFound(CommandRefused):
    _arguments = ("name",)

    def __init__(self, name: str):
        super().__init__(f"no promoted model named {name}")
        self.name = name


@contextmanager
def event_values(prefix: str = ""):
    """A value the request brought that an event's contract refuses (a pydantic ValidationError
    while building it) is an InvalidJob naming each field and rule: the request's fault, a 422,
    never a 500."""
    try:
        yield
    except ValidationError as exc:
        raise InvalidJob([Problem(".".join([prefix, *map(str, e["loc"])] if prefix else map(str, e["loc"])) or "body",
                                  e["msg"].removeprefix("Value error, ")) for e in exc.errors()]) from None
