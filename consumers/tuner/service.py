"""The tuner: runs a Ray Tune experiment for every started job on its partitions.

Tuners form one Kafka consumer group on the events topic; a partition's owner owns its jobs
(docs/architecture.md, "Tuner group"). Assigned a partition, a tuner loads its compact state
(snapshots.py), folds the log from the committed offset to the end, then claims every
started, unfinished job there (JobClaimed, next generation) and runs it, resuming its
experiment folder. Losing a partition, it stops those experiments where they are, marks
their running trials preempted and saves state and offsets before the rebalance goes on.
Which jobs run and each run's life (claim, experiment, outcome) are job_lifecycle.py's; the
claims are claims.py's; this module is the Kafka consumer, the fold and the dispatch. Run it with
`tunix-tune serve tuner`; health, readiness and /metrics on TUNIX_TUNER_PROBE_PORT (8002).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from adapters.consumer import consumer_main
from adapters.kafka_security import client_options
from adapters.publisher import EventPublisher
from adapters.settings import Settings
from consumers.records import LoggedEvent, read_record
from consumers.tuner.claims import Claims, group_partition_owner
from consumers.tuner.job_lifecycle import PUBLISH_TIMEOUT_S, JobLifecycle
from consumers.tuner.ledger import PartitionLedger
from consumers.tuner.ray_processes import start_ray, stop_ray
from consumers.tuner.snapshots import Snapshots
from consumers.tuner.state import TunerJob
from producers.job_run import JobRun
from schemas import events as ev
from schemas.lineage import SeedTrial
from schemas.metrics import EVENTS_CONSUMED, JOBS_OWNED, TAKEOVER_SECONDS

log = structlog.get_logger("tuner")
SAVE_EVERY_S = 5.0  # state snapshot + offset commit; a takeover refolds at most this much log
HANDOVER_TIMEOUT_S = 120.0  # how long a revoked partition's experiments get to stop


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
        self.claims = Claims(self.tuner_id, self.ledger, self.publisher.publish, group_partition_owner(settings))
        self.jobs = JobLifecycle(self.ledger, self.claims, self.publisher.publish, self._run_experiment,
                                 settings.tuner_max_jobs)
        self._lock = asyncio.Lock()  # folding and saving vs. the rebalance listener
        self._stop = asyncio.Event()
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
            self.jobs.releasing |= partitions
            await self.jobs.hand_over(partitions, HANDOVER_TIMEOUT_S)
            await self._save(partitions)
            self.ledger.forget(partitions)
            self.jobs.releasing -= partitions
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
                self.jobs.schedule(job.job_id)
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
            self.jobs.schedule(job.job_id)

    def _on_adjusted(self, job: TunerJob, event: ev.JobAdjusted, partition: int) -> None:
        if (run := JobRun.find(job.job_id)) is not None:
            run.spec = job.spec  # the steered searcher and the stopper read it at Ray's next step
            log.info("job adjusted", job_id=str(job.job_id), changes=event.payload.changes)

    def _on_cancel_requested(self, job: TunerJob, event: ev.JobCancelRequested, partition: int) -> None:
        self.jobs.cancel(job.job_id)

    def _on_claimed(self, job: TunerJob, event: ev.JobClaimed, partition: int) -> None:
        if not self.claims.made_here(event):
            # A claim this tuner did not make, for a job on its partition: only the group can say
            # whether its claimer owns the partition now.
            self.jobs.settle_claim(job.job_id, partition, event.payload.tuner_id)

    _ACTIONS: dict[type, Callable[[Tuner, TunerJob, Any, int], None]] = {
        ev.JobStarted: _on_started,
        ev.JobExtended: _on_started,  # a completed job runs again
        ev.JobAdjusted: _on_adjusted,
        ev.JobCancelRequested: _on_cancel_requested,
        ev.JobClaimed: _on_claimed,
    }

    def _run_experiment(self, run: JobRun, seeds: Sequence[SeedTrial]) -> ev.Event | None:
        from consumers.tuner.runner import run_experiment  # Ray Tune loads with the first job, not at start

        return run_experiment(run, seeds, self.settings.tuning_dir, self.settings.training_folders)


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
