"""Which of its jobs a tuner runs, and each run's life: claim, experiment, outcome.

A job runs in a slot (ledger.JobSlots: at most TUNIX_TUNER_MAX_JOBS at once, the others wait)
under a claim (claims.py). Its experiment runs on a worker thread through a JobRun
(producers/job_run.py) whose events go out under that claim. A run ends in the job's outcome
(JobCompleted, JobFailed, ...), or is handed over: its running trials are marked preempted and
the job's next owner resumes them. Kafka, the group and Ray are injected (`publish`, the
claims, `run_experiment`), so unit tests drive a job's life with fakes
(tests/unit/test_tuner_jobs.py); service.py wires the real ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from uuid import UUID

import structlog

from consumers.tuner.claims import ASK_AGAIN, Claims, Publish
from consumers.tuner.ledger import JobSlots, PartitionLedger
from producers.interrupted_trials import cancelled_unowned, handed_over
from producers.job_outcome import job_failed
from producers.job_run import JobRun
from schemas import events as ev
from schemas.lineage import SeedTrial
from schemas.metrics import JOB_DURATION

log = structlog.get_logger("tuner")
PUBLISH_TIMEOUT_S = 30
CLAIM_RETRY_S = 5.0
# Runs a job's experiment to its outcome on a worker thread; None when it was handed over.
RunExperiment = Callable[[JobRun, Sequence[SeedTrial]], "ev.Event | None"]


class JobLifecycle:
    def __init__(self, ledger: PartitionLedger, claims: Claims, publish: Publish, run_experiment: RunExperiment,
                 max_jobs: int, retry_after_s: float = CLAIM_RETRY_S):
        self.ledger = ledger
        self.claims = claims
        self._publish = publish
        self._run_experiment = run_experiment
        self._retry_after_s = retry_after_s
        self.slots = JobSlots(max_jobs)  # the jobs running here, and those waiting
        self.reclaim: set[UUID] = set()  # jobs to claim again once their run has stopped
        self.releasing: set[int] = set()  # partitions being handed over: their jobs start nothing
        self._tasks: set[asyncio.Task] = set()  # fire-and-forget work, kept from the collector

    def schedule(self, job_id: UUID) -> None:
        if self.slots.holds(job_id):
            return  # a JobStarted for a job already running is ignored
        if self.slots.has_room():
            self.slots.running[job_id] = asyncio.create_task(self._run(job_id))
        else:
            log.info("job waits for a free slot", job_id=str(job_id), running=len(self.slots.running))
            self.slots.wait(job_id)

    def cancel(self, job_id: UUID) -> None:
        if (run := JobRun.find(job_id)) is not None:
            run.cancel()
            log.info("cancelling job", job_id=str(job_id))
        elif job_id not in self.slots.running and self.ledger.jobs[job_id].should_run:
            # Waiting for a slot, or run nowhere: nothing to stop, so the job ends here.
            self.slots.unqueue(job_id)
            self.reclaim.discard(job_id)
            job = self.ledger.jobs[job_id]
            log.info("cancelling a job that runs nowhere", job_id=str(job_id), owner=job.owner)
            self._spawn(self._publish_all(cancelled_unowned(job_id, job.live_trials)))

    def settle_claim(self, job_id: UUID, partition: int, claimer: str) -> None:
        """Someone else claimed a job on this tuner's partition. A claimer the group assigned the
        partition to takes the job over; a claim no member backs (a tuner that is gone, or a forged
        record) is outbid: this tuner claims the job again and resumes it."""
        self._spawn(self._settle_claim(job_id, partition, claimer))

    async def hand_over(self, partitions: set[int], timeout_s: float) -> None:
        """Stop the runs of jobs on `partitions` where they are (resumable) and wait for them."""
        self.slots.drop_waiting(partitions, self.ledger.partition_of)
        leaving = {job_id: task for job_id, task in self.slots.running.items()
                   if self.ledger.partition_of.get(job_id) in partitions}
        for job_id in leaving:
            if (run := JobRun.find(job_id)) is not None:
                run.hand_over()
                log.info("handing the job over", job_id=str(job_id))
        if leaving:
            await asyncio.wait(leaving.values(), timeout=timeout_s)

    async def _settle_claim(self, job_id: UUID, partition: int, claimer: str) -> None:
        verdict = await self.claims.settle(job_id, partition)
        run = JobRun.find(job_id)
        if verdict == ASK_AGAIN:
            asyncio.get_running_loop().call_later(
                self._retry_after_s, lambda: self.settle_claim(job_id, partition, claimer))
        elif verdict == "hand over" and run is not None:
            log.warning("job claimed by another tuner", job_id=str(job_id), by=claimer)
            run.hand_over()
        elif verdict == "claim again":
            log.warning("claim not backed by the tuner group; claiming the job again", job_id=str(job_id), by=claimer)
            if run is None and job_id not in self.slots.running:
                self.schedule(job_id)
            else:  # its events now carry a superseded claim: restart it under a new one
                self.reclaim.add(job_id)
                if run is not None:
                    run.hand_over()

    async def _run(self, job_id: UUID) -> None:
        try:
            await self._claim_and_run(job_id)
        except Exception:  # the outcome is lost to the log: the job resumes under its next owner
            log.exception("could not publish the job's outcome", job_id=str(job_id))
        finally:
            if job_id in self.reclaim:
                self.slots.running.pop(job_id, None)
                self.reclaim.discard(job_id)
                self.schedule(job_id)
            elif (next_job := self.slots.ended(job_id)) is not None:
                self.schedule(next_job)

    async def _claim_and_run(self, job_id: UUID) -> None:
        if (job := self.ledger.jobs.get(job_id)) is None or self._leaving(job_id):
            return  # its partition went to another tuner before the job could start
        try:
            job = await self.claims.claim(job)
        except Exception:  # Kafka did not take the claim: try again while the job is ours
            log.exception("could not claim the job; trying again", job_id=str(job_id))
            asyncio.get_running_loop().call_later(self._retry_after_s, self._retry, job_id)
            return
        if self._leaving(job_id):
            return  # handed over while claiming, before its run existed: the next owner claims it
        log.info("experiment starts", job_id=str(job_id), claim=job.claim, num_samples=job.spec.num_samples)
        started = time.monotonic()
        publish = partial(self._publish_from_thread, asyncio.get_running_loop(), job.claim)
        with JobRun.open(job_id, publish, job.spec, job.ended_trials, budget_origin=started - job.spent_s(),
                         costs=job.costs, baseline_done=job.baseline_done) as run:
            if self.ledger.jobs[job_id].cancel_requested:  # asked before this run could be found
                run.cancel()
            if job_id in self.reclaim:  # outbid while it claimed: stop, then claim again
                run.hand_over()
            try:
                outcome = await asyncio.to_thread(self._run_experiment, run, job.seeds)
            except Exception as exc:  # the job fails, the tuner goes on
                log.exception("experiment failed", job_id=str(job_id))
                outcome = job_failed(job_id, f"{type(exc).__name__}: {exc}")
        if outcome is None:  # handed over: the next owner resumes its running trials
            await self._publish_all(handed_over(job_id, run.running_trials, self.claims.tuner_id, job.claim))
            log.info("experiment handed over", job_id=str(job_id))
            return
        await self._publish_under(job.claim, outcome)
        JOB_DURATION.labels(outcome.type).observe(time.monotonic() - started)
        log.info("experiment ended", job_id=str(job_id), outcome=outcome.type)

    def _leaving(self, job_id: UUID) -> bool:
        return self.ledger.partition_of.get(job_id) in self.releasing

    def _retry(self, job_id: UUID) -> None:
        if (job := self.ledger.jobs.get(job_id)) is not None and job.should_run and job_id in self.ledger.partition_of:
            self.schedule(job_id)

    def _spawn(self, work: Coroutine) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish_all(self, events: list[ev.Event]) -> None:
        for event in events:
            await self._publish(event)

    async def _publish_under(self, claim: int | None, event: ev.Event) -> None:
        await self._publish(event.model_copy(update={"claim": claim}))

    def _publish_from_thread(self, loop: asyncio.AbstractEventLoop, claim: int | None, event: ev.Event) -> None:
        asyncio.run_coroutine_threadsafe(self._publish_under(claim, event), loop).result(PUBLISH_TIMEOUT_S)
