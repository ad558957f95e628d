"""What the tuner knows about jobs, folded from the event log alone (pure, no I/O).

The tuner rebuilds this at start-up by reading the log from offset 0, so after a crash it
knows which jobs were started and never finished: those it resumes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from uuid import UUID

from schemas import events as ev
from schemas.job_spec import JobSpec
from schemas.statuses import TRIAL_TERMINAL


@dataclass(frozen=True)
class TunerJob:
    job_id: UUID
    spec: JobSpec
    started: bool = False
    cancel_requested: bool = False
    finished: bool = False
    # Trials whose terminal TrialUpdated is on the log: a resumed experiment sends them no more.
    ended_trials: frozenset[str] = frozenset()

    @property
    def should_run(self) -> bool:
        return self.started and not self.finished


def next_state(job: TunerJob | None, event: ev.Event) -> TunerJob | None:
    """The tuner's view of one job after `event` (the same object when nothing changes)."""
    match event:
        case ev.JobCreated() if job is None:
            return TunerJob(event.job_id, event.payload.spec)
        case ev.JobStarted() if job is not None and not job.finished:
            return replace(job, started=True)
        case ev.JobCancelRequested() if job is not None and not job.finished:
            # A job never started is cancelled by the projector's rules; nothing to stop here.
            return replace(job, cancel_requested=True, finished=not job.started)
        case ev.JobCompleted() | ev.JobFailed() | ev.JobCancelled() if job is not None:
            return replace(job, finished=True)
        case ev.TrialUpdated(payload=trial) if job is not None and trial.status in TRIAL_TERMINAL:
            return replace(job, ended_trials=job.ended_trials | {trial.trial_id})
    return job
