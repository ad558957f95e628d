"""What the tuner knows about the jobs on its partitions, folded from the event log (pure).

A tuner keeps only unfinished jobs; a finished one is dropped (its tombstone goes to the state
topic, see snapshots.py). The fold is monotone: folding an event twice, or folding events a
snapshot already holds, changes nothing, so a tuner may load a snapshot that is a little
ahead of its committed offsets and fold from those offsets on.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from schemas import events as ev
from schemas.job_spec import JobSpec
from schemas.lineage import SeedTrial
from schemas.statuses import TRIAL_TERMINAL


class TunerJob(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: UUID
    spec: JobSpec
    started: bool = False
    cancel_requested: bool = False
    finished: bool = False
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

    @property
    def should_run(self) -> bool:
        return self.started and not self.finished

    def spent_s(self) -> float:
        """Seconds of the time budget spent: earlier claims, plus the current claim up to its
        latest event on the log (an owner that died spent what its last event shows)."""
        if self.claimed_at is None or self.last_seen_at is None:
            return self.budget_spent_s
        return self.budget_spent_s + max(0.0, (self.last_seen_at - self.claimed_at).total_seconds())


def next_state(job: TunerJob | None, event: ev.Event) -> TunerJob | None:
    """The tuner's view of one job after `event` (the same object when nothing changes)."""
    if isinstance(event, ev.JobExtended) and (job is None or job.finished):
        # The finished job was dropped: it comes back as the extension describes it.
        p = event.payload
        return TunerJob(job_id=event.job_id, spec=p.spec, started=True, claim=p.claim,
                        seeds=job.seeds if job is not None else ())
    if job is None:
        if isinstance(event, ev.JobCreated):
            lineage = event.payload.lineage
            return TunerJob(job_id=event.job_id, spec=event.payload.spec, seeds=tuple(lineage.seeds) if lineage else ())
        return None
    if job.finished or ev.superseded(event, job.claim):
        return job
    if event.claim is not None and event.claim == job.claim:
        job = job.model_copy(update={"last_seen_at": max(job.last_seen_at or event.occurred_at, event.occurred_at)})
    match event:
        case ev.JobStarted():
            return job.model_copy(update={"started": True})
        case ev.JobCancelRequested():
            # A job never started is cancelled by the projector's rules; nothing to stop here.
            return job.model_copy(update={"cancel_requested": True, "finished": not job.started})
        case ev.JobClaimed(payload=claim):
            return job.model_copy(update={
                "owner": claim.tuner_id, "claim": claim.generation, "claimed_at": event.occurred_at,
                "last_seen_at": event.occurred_at, "budget_spent_s": claim.budget_spent_s,
            })
        case ev.JobAdjusted(payload=adjusted):
            return job.model_copy(update={"spec": job.spec.model_copy(update=adjusted.changes)})
        case ev.JobCompleted() | ev.JobFailed() | ev.JobCancelled():
            return job.model_copy(update={"finished": True})
    if isinstance(event, ev.TrialUpdated) and event.payload.cpu_s is not None:
        job = job.model_copy(update={"costs": {**job.costs, event.payload.trial_id: (
            event.payload.cpu_s, event.payload.gpu_s or 0.0)}})
    match event:
        case ev.TrialUpdated(payload=trial) if trial.status in TRIAL_TERMINAL:
            return job.model_copy(update={"ended_trials": job.ended_trials | {trial.trial_id},
                                          "live_trials": job.live_trials - {trial.trial_id}})
        case ev.TrialUpdated(payload=trial) if trial.status == "running" and trial.trial_id not in job.ended_trials:
            return job.model_copy(update={"live_trials": job.live_trials | {trial.trial_id}})
        case ev.TrialUpdated(payload=trial):  # stale or preempted: no longer running anywhere
            return job.model_copy(update={"live_trials": job.live_trials - {trial.trial_id}})
    return job


def claim_event(job: TunerJob, tuner_id: str, source: str) -> ev.JobClaimed:
    """The JobClaimed by which `tuner_id` takes `job` over: the next generation, and the
    budget spent so far as the log shows it."""
    generation = (job.claim or 0) + 1
    return ev.JobClaimed(job_id=job.job_id, source=source, claim=generation, payload=ev.JobClaimedPayload(
        tuner_id=tuner_id, generation=generation, budget_spent_s=round(job.spent_s(), 3)))
