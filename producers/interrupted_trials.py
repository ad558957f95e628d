"""The TrialUpdated events of trials interrupted by a change of owner: `stale` when their
tuner vanished without handing the job over (the next owner publishes them), `preempted` when
their tuner handed the job over (it publishes them itself, before letting go); and the end of a
job cancelled while no tuner ran it."""

from __future__ import annotations

from uuid import UUID

from producers.job_run import CANCELLED, SOURCE
from schemas import events as ev


def _interrupted(job_id: UUID, trial_id: str, status: str, reason: str, claim: int | None) -> ev.TrialUpdated:
    return ev.TrialUpdated(job_id=job_id, source=SOURCE, claim=claim,
                           payload=ev.TrialUpdatedPayload(trial_id=trial_id, status=status, reason=reason))


def left_running(job_id: UUID, trial_ids, previous_owner: str | None, claim: int) -> list[ev.TrialUpdated]:
    reason = (f"lease lapsed: its tuner {previous_owner or 'unknown'} stopped without handing it over; "
              "resumes from its last checkpoint")
    return [_interrupted(job_id, t, "stale", reason, claim) for t in sorted(trial_ids)]


def handed_over(job_id: UUID, trial_ids, tuner_id: str, claim: int) -> list[ev.TrialUpdated]:
    reason = f"tuner {tuner_id} handed the job over; resumes from its last checkpoint"
    return [_interrupted(job_id, t, "preempted", reason, claim) for t in sorted(trial_ids)]


def cancelled_unowned(job_id: UUID, trial_ids) -> list[ev.Event]:
    """A cancel for a job no tuner runs (it waited for a slot, or its run was stopped by a claim
    that no tuner backs): its trials that the log shows running stop, and the job is cancelled.
    Published without a claim, so no claim on the log can fence them out."""
    stopped = [_interrupted(job_id, t, "stopped", CANCELLED, None) for t in sorted(trial_ids)]
    return [*stopped, ev.JobCancelled(job_id=job_id, source=SOURCE, payload=ev.JobCancelledPayload(reason=CANCELLED))]
