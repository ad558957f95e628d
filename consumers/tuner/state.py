"""What the tuner knows about the jobs on its partitions, folded from the event log (pure).

The job's status moves by the projector's own rules (service/read/projection.py: `refusal` and
`next_status`), so the tuner acts on exactly the jobs the read model shows: an event the
projector dead-letters (a JobExtended for a job never created or not completed, an adjustment
that breaks the spec) changes nothing here. A finished job is kept in a slim form (its status,
claim and, once completed, seeds), so a second JobCreated or a late JobExtended is judged as the projector judges
it. The fold is monotone: folding an event twice, or folding events a snapshot already holds,
changes nothing, so a tuner may load a snapshot that is a little ahead of its committed offsets
and fold from those offsets on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from schemas import events as ev
from schemas.job_spec import JobSpec
from schemas.lineage import SeedTrial
from schemas.statuses import TRIAL_TERMINAL
from service.read.projection import is_terminal_job, next_status, refusal


class TunerJob(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: UUID
    spec: JobSpec | None  # None once finished: nothing judges a finished job by its spec
    status: str = "created"  # as the read model has it (service.read.projection.next_status)
    # Trials whose terminal TrialUpdated is on the log: a resumed experiment sends them no more.
    ended_trials: frozenset[str] = frozenset()
    # Trials whose latest status is running: if their owner vanished without handing the job
    # over (no preempted), the next owner marks them stale before resuming them.
    live_trials: frozenset[str] = frozenset()
    # The latest JobClaimed: who owns the job, its generation, and when it was claimed.
    owner: str | None = None
    claim: int | None = None
    claimed_at: datetime | None = None
    # The time budget spent under earlier claims, and the latest event under the current one.
    budget_spent_s: float = 0.0
    last_seen_at: datetime | None = None
    # Parent trials that seed the searcher (warm start, fork), from the JobCreated.
    seeds: tuple[SeedTrial, ...] = ()
    # trial_id -> (cpu_s, gpu_s) of its latest report on the log: the cost budget's ledger.
    costs: dict[str, tuple[float, float]] = {}
    # A BaselineEvaluated is on the log: the base model is not scored again (resumed, extended).
    baseline_done: bool = False

    @model_validator(mode="before")
    @classmethod
    def _status_from_older_snapshots(cls, data: Any) -> Any:
        # Snapshots written before `status` kept three flags instead.
        if isinstance(data, dict) and "status" not in data and "started" in data:
            data = {**data, "status": "cancelled" if data.get("finished") and data.get("cancel_requested")
                    else "completed" if data.get("finished")
                    else "cancelling" if data.get("cancel_requested") else "running" if data["started"] else "created"}
        return data

    @property
    def should_run(self) -> bool:
        return self.status in ("running", "cancelling")

    @property
    def cancel_requested(self) -> bool:
        return self.status == "cancelling"

    @property
    def finished(self) -> bool:
        return is_terminal_job(self.status)

    def spent_s(self) -> float:
        """Seconds of the time budget spent: earlier claims, plus the current claim up to its
        latest event on the log (an owner that died spent what its last event shows)."""
        if self.claimed_at is None or self.last_seen_at is None:
            return self.budget_spent_s
        return self.budget_spent_s + max(0.0, (self.last_seen_at - self.claimed_at).total_seconds())


def next_state(job: TunerJob | None, event: ev.Event) -> TunerJob | None:
    """The tuner's view of one job after `event` (the same object when nothing changes).

    In order: what `refusal` refuses changes nothing (the projector dead-letters it); a
    JobCreated creates the job; an event from a replaced owner changes nothing; the events in
    _ANY_STATUS apply whatever the job's status; a finished job stays as it is; an event under
    the current claim advances the job's clock; a change of status (`next_status`) is applied
    alone; then the events in _WHILE_ACTIVE change what they describe."""
    if refusal(job.status if job else None, event, job.spec if job else None, job.claim if job else None) is not None:
        return job  # the projector dead-letters it
    if job is None:
        lineage = event.payload.lineage
        return TunerJob(job_id=event.job_id, spec=event.payload.spec, seeds=tuple(lineage.seeds) if lineage else ())
    if ev.superseded(event, job.claim):
        return job  # from a replaced owner: the projector ignores it too
    any_status = _ANY_STATUS.get(type(event))
    if any_status is not None:
        return any_status(job, event)
    if job.finished:
        return job
    if event.claim is not None and event.claim == job.claim:
        job = job.model_copy(update={"last_seen_at": max(job.last_seen_at or event.occurred_at, event.occurred_at)})
    status = next_status(job.status, event)
    if status != job.status:
        return _slim(job.model_copy(update={"status": status})) if is_terminal_job(status) else (
            job.model_copy(update={"status": status}))
    change = _WHILE_ACTIVE.get(type(event))
    return job if change is None else change(job, event)


def _baseline(job: TunerJob, event: ev.BaselineEvaluated) -> TunerJob:
    return job if job.baseline_done else job.model_copy(update={"baseline_done": True})


def _extended(job: TunerJob, event: ev.JobExtended) -> TunerJob:
    """`refusal` lets through only the extension of a completed job. It runs again as the
    extension describes it, its seeds unchanged; its latest claim is the one the read model
    fences by (the payload's is only a copy of it)."""
    return TunerJob(job_id=event.job_id, spec=event.payload.spec, status=next_status(job.status, event),
                    owner=job.owner, claim=job.claim, seeds=job.seeds, baseline_done=job.baseline_done)


def _claimed(job: TunerJob, event: ev.JobClaimed) -> TunerJob:
    claim = event.payload
    return job.model_copy(update={
        "owner": claim.tuner_id, "claim": claim.generation, "claimed_at": event.occurred_at,
        "last_seen_at": event.occurred_at, "budget_spent_s": claim.budget_spent_s,
    })


def _adjusted(job: TunerJob, event: ev.JobAdjusted) -> TunerJob:
    return job.model_copy(update={"spec": job.spec.adjusted(event.payload.changes)})


def _trial_updated(job: TunerJob, event: ev.TrialUpdated) -> TunerJob:
    """The trial's latest cost, and whether it is live or has ended."""
    trial = event.payload
    if trial.cpu_s is not None:
        job = job.model_copy(update={"costs": {**job.costs, trial.trial_id: (trial.cpu_s, trial.gpu_s or 0.0)}})
    if trial.status in TRIAL_TERMINAL:
        return job.model_copy(update={"ended_trials": job.ended_trials | {trial.trial_id},
                                      "live_trials": job.live_trials - {trial.trial_id}})
    if trial.status == "running" and trial.trial_id not in job.ended_trials:
        return job.model_copy(update={"live_trials": job.live_trials | {trial.trial_id}})
    # stale or preempted: no longer running anywhere
    return job.model_copy(update={"live_trials": job.live_trials - {trial.trial_id}})


# Whatever the job's status (a finished job included).
_ANY_STATUS: dict[type, Callable[[TunerJob, Any], TunerJob]] = {
    ev.BaselineEvaluated: _baseline,  # the base model is not scored again (resumed, extended)
    ev.JobExtended: _extended,  # revives a completed job
}

# Only while the job has not finished, once its status has not changed.
_WHILE_ACTIVE: dict[type, Callable[[TunerJob, Any], TunerJob]] = {
    ev.JobClaimed: _claimed,
    ev.JobAdjusted: _adjusted,
    ev.TrialUpdated: _trial_updated,
}


def _slim(job: TunerJob) -> TunerJob:
    """A finished job as the tuner keeps it, a few hundred bytes: what judging later events
    needs (status, claim) and, for a completed job, what its extension starts from (seeds)."""
    return TunerJob(job_id=job.job_id, spec=None, status=job.status, owner=job.owner, claim=job.claim,
                    seeds=job.seeds if job.status == "completed" else (), baseline_done=job.baseline_done)


def claim_event(job: TunerJob, tuner_id: str, source: str) -> ev.JobClaimed:
    """The JobClaimed by which `tuner_id` takes `job` over: the next generation, and the
    budget spent so far as the log shows it."""
    generation = (job.claim or 0) + 1
    return ev.JobClaimed(job_id=job.job_id, source=source, claim=generation, payload=ev.JobClaimedPayload(
        tuner_id=tuner_id, generation=generation, budget_spent_s=round(job.spent_s(), 3)))


def claim_verdict(partition_owner: str | None, tuner_id: str, job: TunerJob | None, on_partition: bool) -> str:
    """What the tuner holding a job's partition does about a claim it did not make, once the
    group coordinator said who is assigned the partition (`partition_owner`): "hand over" when
    that is anyone but this tuner (the partition moved on, or is moving); "claim again" when it
    is this tuner and the job still runs here (no member backs the claim: a tuner that is gone,
    or a forged record); else "nothing" (the job ended, or moved to another partition)."""
    if partition_owner != tuner_id:
        return "hand over"
    if job is None or not job.should_run or not on_partition:
        return "nothing"
    return "claim again"
