"""This tuner's claims on jobs (docs/architecture.md, "Tuner group", "Claims and fencing").

A tuner runs a job only under a claim: a JobClaimed of the job's next generation, which every
event of that run carries. A claim this tuner did not make, for a job on one of its partitions,
is settled by asking the group who is assigned the partition (state.claim_verdict). The group
is reached through `partition_owner`, so unit tests settle claims against a fake group.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

import structlog
from aiokafka.errors import KafkaError

from adapters.event_log import group_members
from adapters.kafka_security import client_options
from adapters.settings import Settings
from consumers.tuner.ledger import PartitionLedger
from consumers.tuner.state import TunerJob, claim_event, claim_verdict, next_state
from producers.interrupted_trials import left_running
from producers.job_run import SOURCE
from schemas import events as ev

log = structlog.get_logger("tuner")
Publish = Callable[[ev.Event], Awaitable[None]]
PartitionOwner = Callable[[int], Awaitable[str | None]]  # the member assigned a partition; None while rebalancing
ASK_AGAIN = "ask again"  # the group could not say who owns the partition: settle the claim later


def group_partition_owner(settings: Settings) -> PartitionOwner:
    """Who the tuner group assigned a partition to, as its coordinator says now."""
    async def owner(partition: int) -> str | None:
        members = await group_members(settings.kafka_bootstrap_servers, settings.tuner_group_id,
                                      client_options(settings))
        return next((m["client_id"] for m in members if partition in m["partitions"]), None)
    return owner


class Claims:
    def __init__(self, tuner_id: str, ledger: PartitionLedger, publish: Publish, partition_owner: PartitionOwner):
        self.tuner_id = tuner_id
        self.ledger = ledger
        self._publish = publish
        self._partition_owner = partition_owner
        self._made: dict[UUID, int] = {}  # job -> the generation this tuner last claimed it under

    def made_here(self, claim: ev.JobClaimed) -> bool:
        return self._made.get(claim.job_id) == claim.payload.generation

    async def claim(self, job: TunerJob) -> TunerJob:
        """Publish the job's next claim, and mark stale the trials its last owner left running.
        Returns the job as it is now, under the new claim."""
        claim = claim_event(job, self.tuner_id, SOURCE)
        self._made[job.job_id] = claim.payload.generation  # before its echo can come back
        for event in [claim, *left_running(job.job_id, job.live_trials, job.owner, claim.claim)]:
            await self._publish(event)
        # Folded into the job as it is now: a cancel or an adjustment folded during the publish stays.
        job = next_state(self.ledger.jobs.get(job.job_id, job), claim)
        self.ledger.record(job)
        return job

    async def settle(self, job_id: UUID, partition: int) -> str:
        """What to do about a claim this tuner did not make for a job on `partition`: "hand over",
        "claim again", "nothing" (state.claim_verdict), or ASK_AGAIN when the group cannot say."""
        try:
            owner = await self._partition_owner(partition)
        except (KafkaError, OSError) as exc:
            log.warning("cannot tell who owns the partition; asking again", job_id=str(job_id), error=str(exc))
            return ASK_AGAIN
        if owner is None:  # the group is rebalancing, or its coordinator is moving
            return ASK_AGAIN
        verdict = claim_verdict(owner, self.tuner_id, self.ledger.jobs.get(job_id),
                                self.ledger.partition_of.get(job_id) == partition)
        log.info("claim settled", job_id=str(job_id), partition=partition, partition_owner=owner, verdict=verdict)
        return verdict
