"""One running job's state, shared by the tuner and the Ray objects acting for the job.

Ray pickles the callback, the stopper and the scheduler with the experiment (to restore it
after a crash), so they cannot hold a reference to this object: they keep the job id and look
the JobRun up here. The registry has a lifetime: `JobRun.open` registers the job's run and
removes it when the experiment ends, in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar
from uuid import UUID

from schemas import events as ev

Publish = Callable[[ev.Event], None]  # blocks until Kafka acknowledged the event
CANCELLED = "job cancelled"
BUDGET_SPENT = "time budget spent"
SOURCE = "tunix-tune.tuner"  # the `source` of every event the tuner publishes


@dataclass
class JobRun:
    job_id: UUID
    publish: Publish
    # Trials whose terminal TrialUpdated is on the log already: a resumed experiment sends them no more.
    ended_on_log: frozenset[str] = frozenset()
    # Why every trial of the job is being stopped (e.g. cancelled); None while it runs on.
    stop_reason: str | None = None
    # trial_id -> why the scheduler stopped it early (ASHA/HyperBand), for its terminal event.
    scheduler_stops: dict[str, str] = field(default_factory=dict)
    # trial_id -> what the scheduler changed in it (a PBT exploit), for its next event.
    scheduler_notes: dict[str, str] = field(default_factory=dict)
    # When the job's time budget runs out (time.monotonic()); None without a budget.
    deadline: float | None = None
    # Set when the job moves to another tuner: the experiment stops where it is, resumable.
    handing_over: bool = False
    # Trials whose latest TrialUpdated says running: preempted if the job is handed over.
    running_trials: set[str] = field(default_factory=set)
    # trial_id -> when it last started or reported (time.monotonic()): its lease.
    renewed: dict[str, float] = field(default_factory=dict)

    _running: ClassVar[dict[UUID, "JobRun"]] = {}

    @classmethod
    @contextmanager
    def open(cls, job_id: UUID, publish: Publish, ended_on_log: frozenset[str] = frozenset(),
             deadline: float | None = None) -> Iterator["JobRun"]:
        run = cls(job_id, publish, ended_on_log, deadline=deadline)
        cls._running[job_id] = run
        try:
            yield run
        finally:
            cls._running.pop(job_id, None)

    @classmethod
    def of(cls, job_id: UUID) -> "JobRun":
        return cls._running[job_id]

    @classmethod
    def find(cls, job_id: UUID) -> "JobRun | None":
        return cls._running.get(job_id)

    def cancel(self) -> None:
        """Stop the job's trials at their next report, and every pending one."""
        self.stop_reason = CANCELLED

    def hand_over(self) -> None:
        """Stop the experiment at its next step without ending any trial: the job's next
        owner restores it from its folder (see consumers/tuner/schedulers.py)."""
        self.handing_over = True

    def out_of_budget(self, now: float) -> bool:
        if self.deadline is not None and now >= self.deadline and self.stop_reason is None:
            self.stop_reason = BUDGET_SPENT
        return self.stop_reason == BUDGET_SPENT

    @property
    def cancelled(self) -> bool:
        return self.stop_reason == CANCELLED
