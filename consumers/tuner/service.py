"""The tuner: runs a Ray Tune experiment for every started job on its partitions.

Tuners form one Kafka consumer group on the events topic; a partition's owner owns its jobs
(docs/architecture.md, "Tuner group"). Assigned a partition, a tuner loads its compact state
(snapshots.py), folds the log from the committed offset to the end, then claims every
started, unfinished job there (JobClaimed, next generation) and runs it, resuming its
experiment folder. Losing a partition, it stops those experiments where they are, marks
their running trials preempted and saves state and offsets before the rebalance goes on.
Experiments run on worker threads through one JobRun each (producers/job_run.py). Run it with
`tunix-tune serve tuner`; health, readiness and /metrics on TUNIX_TUNER_PROBE_PORT (8002).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from functools import partial
from typing import Any
from uuid import UUID

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from adapters.consumer import consumer_main
from adapters.event_log import group_members
from adapters.kafka_security import client_options
from adapters.publisher import EventPublisher
from adapters.settings import Settings
from consumers.records import LoggedEvent, read_record
from consumers.tuner.ray_processes import start_ray, stop_ray
from consumers.tuner.ledger import JobSlots, PartitionLedger
from consumers.tuner.snapshots import Snapshots
from consumers.tuner.state import TunerJob, claim_event, claim_verdict, next_state
from producers.job_outcome import job_failed
from producers.interrupted_trials import cancelled_unowned, handed_over, left_running
from producers.job_run import SOURCE, JobRun
from schemas import events as ev
from schemas.metrics import EVENTS_CONSUMED, JOB_DURATION, JOBS_OWNED, TAKEOVER_SECONDS

log = structlog.get_logger("tuner")
PUBLISH_TIMEOUT_S = 30
SAVE_EVERY_S = 5.0  # state snapshot + offset commit; a takeover refolds at most this much log
HANDOVER_TIMEOUT_S = 120.0  # how long a revoked partition's experiments get to stop
CLAIM_RETRY_S = 5.0


class Tuner:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.tuner_id = settings.tuner_id or f"{socket.gethostname()}-{os.getpid()}"
        self.topic = settings.topics.events.name
        bootstrap = settings.kafka_bootstrap_servers
        self.publisher = EventPublisher(bootstrap, settings.topics, PUBLISH_TIMEOUT_S, client_options(settings))
        self.snapshots = Snapshots(bootstrap, settings.topics.tuner_state.name, client_options(settings))
        session_ms = int(settings.tuner_session_timeout_s * 1000)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, **client_options(settings),
            group_id=settings.tuner_group_id, client_id=self.tuner_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=session_ms, heartbeat_interval_ms=max(100, session_ms // 3),
            # Members get this long to stop their experiments before a rebalance goes on without them.
            rebalance_timeout_ms=int(HANDOVER_TIMEOUT_S * 1000) + 30_000,
        )
        self.ledger = PartitionLedger()  # the jobs of this tuner's partitions, and how far each is folded
        self.slots = JobSlots(settings.tuner_max_jobs)  # the jobs running here, and those waiting
        self.claimed: dict[UUID, int] = {}  # job -> the generation this tuner claimed it under
        self.reclaim: set[UUID] = set()  # jobs to claim again once their run has stopped
        self._tasks: set[asyncio.Task] = set()  # fire-and-forget work, kept from the collector
        self.releasing: set[int] = set()  # partitions being handed over: their jobs start nothing
        self._lock = asyncio.Lock()  # folding and saving vs. the rebalance listener
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ray_up = self._joined = False

    def stop(self) -> None:
        self._stop.set()

    async def checks(self) -> dict[str, str]:
        """Readiness: Ray is up, the tuner is in its group, its partitions are caught up."""
        kafka = ("joining the tuner group" if not self._joined
                 else f"reading partitions {sorted(self.ledger.catching_up)} up to their end"
                 if self.ledger.catching_up else "ok")
        return {"ray": "ok" if self._ray_up else "starting", "kafka": kafka}

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.publisher.start()  # connects and creates the missing topics
        await self.snapshots.start()
        await asyncio.to_thread(start_ray, self.settings.state_dir, self.settings.ray_address)
        self._ray_up = True
        self.consumer.subscribe([self.topic], listener=_HandOverBeforeRevoke(self))
        await self.consumer.start()
        log.info("tuner joined its group", tuner_id=self.tuner_id, group=self.settings.tuner_group_id)
        saved = time.monotonic()
        try:
            while not self._stop.is_set():
                batches = await self.consumer.getmany(timeout_ms=500)
                async with self._lock:
                    for tp in sorted(batches, key=lambda tp: tp.partition):
                        for record in batches[tp]:
                            self._fold(record)
                    self._go_live()
                    if time.monotonic() - saved >= SAVE_EVERY_S:
                        await self._save({tp.partition for tp in self.consumer.assignment()})
                        saved = time.monotonic()
        finally:
            await self.release(set(self.ledger.folded))
            await self.consumer.stop()  # leaves the group: the others rebalance at once
            await self.snapshots.close()
            await self.publisher.close()
            await asyncio.to_thread(stop_ray, self.settings.state_dir)

    # -- partitions coming and going -------------------------------------------------------

    async def take(self, partitions: set[int]) -> None:
        """Load the state of newly assigned partitions; fold from the committed offsets."""
        async with self._lock:
            tps = [TopicPartition(self.topic, p) for p in partitions]
            ends = await self.consumer.end_offsets(tps) if tps else {}
            snapshots = await self.snapshots.load(partitions) if tps else {}
            for tp in tps:
                loaded = snapshots.get(tp.partition)  # None: not trusted, rebuilt from offset 0, once
                committed = (await self.consumer.committed(tp) or 0) if loaded is not None else 0
                self.ledger.assign(tp.partition, loaded, committed, ends[tp], time.monotonic())
                log.info("partition assigned", partition=tp.partition, jobs=len(loaded or {}),
                         fold_from=self.ledger.folded[tp.partition], end=ends[tp])
            self._joined = True
            self._go_live()

    async def release(self, partitions: set[int]) -> None:
        """Stop the experiments of jobs on `partitions` where they are (resumable), then save
        the partitions' state and offsets and forget them."""
        async with self._lock:
            self.releasing |= partitions
            self.slots.drop_waiting(partitions, self.ledger.partition_of)
            leaving = {job_id: task for job_id, task in self.slots.running.items()
                       if self.ledger.partition_of.get(job_id) in partitions}
            for job_id in leaving:
                if (run := JobRun.find(job_id)) is not None:
                    run.hand_over()
                    log.info("handing the job over", job_id=str(job_id))
            if leaving:
                await asyncio.wait(leaving.values(), timeout=HANDOVER_TIMEOUT_S)
            await self._save(partitions)
            self.ledger.forget(partitions)
            self.releasing -= partitions
            JOBS_OWNED.set(self.ledger.owned())

    async def _save(self, partitions: set[int]) -> None:
        """Snapshot the changed jobs of `partitions`, then commit how far the log was folded."""
        changed, marking = self.ledger.changes(partitions)
        try:
            await self.snapshots.save(changed, marking)
            self.ledger.saved(set(changed), marking)
            offsets = {TopicPartition(self.topic, p): offset for p, offset in self.ledger.offsets(partitions).items()}
            if offsets:
                await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:  # the next save (or the next owner) catches up
            log.warning("state or offsets not saved", error=str(exc))

    def _go_live(self) -> None:
        """Partitions folded up to their end start acting: their unfinished jobs are claimed."""
        for live in self.ledger.went_live():
            for job in live.jobs:
                log.info("taking the job over", job_id=str(job.job_id), previous_owner=job.owner)
                self._schedule(job.job_id)
            TAKEOVER_SECONDS.observe(time.monotonic() - live.since)
        JOBS_OWNED.set(self.ledger.owned())

    # -- the log ---------------------------------------------------------------------------

    def _fold(self, record: ConsumerRecord) -> None:
        if not self.ledger.admits(record.partition, record.offset):
            return  # fetched before a rebalance: the partition is not ours, or this is folded
        read = read_record(record, len(self.consumer.partitions_for_topic(self.topic) or ()) or 1)
        if not isinstance(read, LoggedEvent):
            return  # the projector dead-letters it; the tuner acts on the same events it projects
        event = read.event
        EVENTS_CONSUMED.labels(event.type).inc()
        try:
            job = self.ledger.fold(record.partition, event)  # None: nothing changed, or not live yet
        except Exception:  # a record no rule foresaw: skipped (the projector dead-letters it), never a stop
            log.exception("event not folded", job_id=str(event.job_id), event_id=str(event.event_id),
                          offset=f"{record.partition}/{record.offset}")
            return
        if job is None:
            return
        act = self._ACTIONS.get(type(event))
        if act is None:
            return
        with structlog.contextvars.bound_contextvars(job_id=str(event.job_id), event_id=str(event.event_id)):
            act(self, job, event, record.partition)

    # What the tuner does about an event it folded that changed a job on a caught-up partition
    # (the fold, state.next_state, has applied it to `job`); other events only change its state.

    def _on_started(self, job: TunerJob, event: ev.JobStarted | ev.JobExtended, partition: int) -> None:
        if job.should_run:
            self._schedule(job.job_id)

    def _on_adjusted(self, job: TunerJob, event: ev.JobAdjusted, partition: int) -> None:
        if (run := JobRun.find(job.job_id)) is not None:
            run.spec = job.spec  # the steered searcher and the stopper read it at Ray's next step
            log.info("job adjusted", job_id=str(job.job_id), changes=event.payload.changes)

    def _on_cancel_requested(self, job: TunerJob, event: ev.JobCancelRequested, partition: int) -> None:
        self._cancel(job.job_id)

    def _on_claimed(self, job: TunerJob, event: ev.JobClaimed, partition: int) -> None:
        if self.claimed.get(job.job_id) != event.payload.generation:
            # A claim this tuner did not make, for a job on its partition: only the group can say
            # whether its claimer owns the partition now.
            self._spawn(self._settle_claim(job.job_id, partition, event.payload.tuner_id))

    _ACTIONS: dict[type, Callable[[Tuner, TunerJob, Any, int], None]] = {
        ev.JobStarted: _on_started,
        ev.JobExtended: _on_started,  # a completed job runs again
        ev.JobAdjusted: _on_adjusted,
        ev.JobCancelRequested: _on_cancel_requested,
        ev.JobClaimed: _on_claimed,
    }

    # -- running jobs ----------------------------------------------------------------------

    def _schedule(self, job_id: UUID) -> None:
        if self.slots.holds(job_id):
            return  # a JobStarted for a job already running is ignored
        if self.slots.has_room():
            self.slots.running[job_id] = asyncio.create_task(self._run_job(job_id))
        else:
            log.info("job waits for a free slot", job_id=str(job_id), running=len(self.slots.running))
            self.slots.wait(job_id)

    def _cancel(self, job_id: UUID) -> None:
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

    async def _settle_claim(self, job_id: UUID, partition: int, claimer: str) -> None:
        """Someone else claimed a job on this tuner's partition. A claimer the group assigned the
        partition to takes the job over; a claim no member backs (a tuner that is gone, or a forged
        record) is outbid: this tuner claims the job again and resumes it."""
        try:
            members = await group_members(self.settings.kafka_bootstrap_servers, self.settings.tuner_group_id,
                                          client_options(self.settings))
        except (KafkaError, OSError) as exc:
            log.warning("cannot tell who owns the partition; asking again", job_id=str(job_id), error=str(exc))
            asyncio.get_running_loop().call_later(
                CLAIM_RETRY_S, lambda: self._spawn(self._settle_claim(job_id, partition, claimer)))
            return
        owner = next((m["client_id"] for m in members if partition in m["partitions"]), None)
        if owner is None:  # the group is rebalancing, or its coordinator is moving: ask again
            asyncio.get_running_loop().call_later(
                CLAIM_RETRY_S, lambda: self._spawn(self._settle_claim(job_id, partition, claimer)))
            return
        verdict = claim_verdict(owner, self.tuner_id, self.ledger.jobs.get(job_id),
                                self.ledger.partition_of.get(job_id) == partition)
        run = JobRun.find(job_id)
        if verdict == "hand over" and run is not None:
            log.warning("job claimed by another tuner", job_id=str(job_id), by=claimer, partition_owner=owner)
            run.hand_over()
        elif verdict == "claim again":
            log.warning("claim not backed by the tuner group; claiming the job again", job_id=str(job_id), by=claimer)
            if run is None and job_id not in self.slots.running:
                self._schedule(job_id)
            else:  # its events now carry a superseded claim: restart it under a new one
                self.reclaim.add(job_id)
                if run is not None:
                    run.hand_over()

    def _spawn(self, work) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish_all(self, events: list[ev.Event]) -> None:
        for event in events:
            await self.publisher.publish(event)

    async def _claim(self, job: TunerJob) -> TunerJob:
        """Publish the job's next claim, and mark stale the trials its last owner left running."""
        claim = claim_event(job, self.tuner_id, SOURCE)
        self.claimed[job.job_id] = claim.payload.generation  # before its echo can come back
        await self._publish_all([claim, *left_running(job.job_id, job.live_trials, job.owner, claim.claim)])
        # Folded into the job as it is now: a cancel or an adjustment folded during the publish stays.
        job = next_state(self.ledger.jobs.get(job.job_id, job), claim)
        self.ledger.record(job)
        return job

    async def _run_job(self, job_id: UUID) -> None:
        from consumers.tuner.runner import run_experiment

        outcome, run = None, None
        try:
            if (job := self.ledger.jobs.get(job_id)) is None or self.ledger.partition_of.get(job_id) in self.releasing:
                return  # its partition went to another tuner before the job could start
            try:
                job = await self._claim(job)
            except Exception:  # Kafka did not take the claim: try again while the job is ours
                log.exception("could not claim the job; trying again", job_id=str(job_id))
                asyncio.get_running_loop().call_later(CLAIM_RETRY_S, self._retry, job_id)
                return
            if self.ledger.partition_of.get(job_id) in self.releasing:
                return  # handed over while claiming, before its run existed: the next owner claims it
            log.info("experiment starts", job_id=str(job_id), claim=job.claim, num_samples=job.spec.num_samples)
            started = time.monotonic()
            with JobRun.open(job_id, partial(self._publish_from_thread, job.claim), job.spec, job.ended_trials,
                             budget_origin=started - job.spent_s(), costs=job.costs,
                             baseline_done=job.baseline_done) as run:
                if self.ledger.jobs[job_id].cancel_requested:  # asked before this run could be found
                    run.cancel()
                if job_id in self.reclaim:  # outbid while it claimed: stop, then claim again
                    run.hand_over()
                try:
                    outcome = await asyncio.to_thread(
                        run_experiment, run, job.seeds, self.settings.tuning_dir, self.settings.training_folders)
                except Exception as exc:  # the job fails, the tuner goes on
                    log.exception("experiment failed", job_id=str(job_id))
                    outcome = job_failed(job_id, f"{type(exc).__name__}: {exc}")
            if outcome is None:  # handed over: the next owner resumes its running trials
                for event in handed_over(job_id, run.running_trials, self.tuner_id, job.claim):
                    await self.publisher.publish(event)
                log.info("experiment handed over", job_id=str(job_id))
                return
            await self._publish(job.claim, outcome)
            JOB_DURATION.labels(outcome.type).observe(time.monotonic() - started)
            log.info("experiment ended", job_id=str(job_id), outcome=outcome.type)
        except Exception:  # the outcome is lost to the log: the job resumes under its next owner
            log.exception("could not publish the job's outcome", job_id=str(job_id))
        finally:
            if job_id in self.reclaim:
                self.slots.running.pop(job_id, None)
                self.reclaim.discard(job_id)
                self._schedule(job_id)
            elif (next_job := self.slots.ended(job_id)) is not None:
                self._schedule(next_job)

    def _retry(self, job_id: UUID) -> None:
        if (job := self.ledger.jobs.get(job_id)) is not None and job.should_run and job_id in self.ledger.partition_of:
            self._schedule(job_id)

    async def _publish(self, claim: int | None, event: ev.Event) -> None:
        await self.publisher.publish(event.model_copy(update={"claim": claim}))

    def _publish_from_thread(self, claim: int | None, event: ev.Event) -> None:
        asyncio.run_coroutine_threadsafe(self._publish(claim, event), self._loop).result(PUBLISH_TIMEOUT_S)


class _HandOverBeforeRevoke(ConsumerRebalanceListener):
    """Kafka waits for every member's revoke before it assigns partitions again, so stopping
    the experiments here means the next owner never starts a job that still runs here."""

    def __init__(self, tuner: Tuner):
        self.tuner = tuner

    async def on_partitions_revoked(self, revoked) -> None:
        await self.tuner.release({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned) -> None:
        await self.tuner.take({tp.partition for tp in assigned})


def main() -> None:
    consumer_main(Tuner, lambda s: s.tuner_probe_port)
