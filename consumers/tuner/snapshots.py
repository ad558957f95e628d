"""The tuners' compact state: the latest TunerJob of every unfinished job, on a compacted topic.

Why: a tuner that takes over a partition must know the state of the jobs on it without
folding the partition from offset 0 (start-up would grow with all history ever written).
The tuner group's committed offsets say how far the log was folded; this topic holds the fold
itself, one record per job keyed by job_id on the job's events partition, and a tombstone
when the job finishes. Kafka compaction keeps it to about one record per unfinished job.

Order of writes: the snapshot of a partition is written (and acknowledged) before its offset
is committed, so it is never behind the committed offset; folding from the committed offset
over a snapshot that is a little ahead changes nothing (the fold is monotone, state.py).
"""

from __future__ import annotations

from uuid import UUID

from aiokafka import AIOKafkaProducer

from adapters.event_log import Security, read_to_end
from consumers.tuner.state import TunerJob


class Snapshots:
    def __init__(self, bootstrap_servers: str, topic: str, security: Security = None):
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.security = security
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=5,
            **(security or {}))

    async def start(self) -> None:
        await self._producer.start()

    async def close(self) -> None:
        await self._producer.stop()

    async def load(self, partitions: set[int]) -> dict[int, dict[UUID, TunerJob]]:
        """The unfinished jobs of these events partitions, as last saved, by partition."""
        jobs: dict[int, dict[UUID, TunerJob]] = {p: {} for p in partitions}
        async for records in read_to_end(self.bootstrap_servers, self.topic, partitions=sorted(partitions),
                                             security=self.security):
            for record in records:
                job_id = UUID(record.key.decode())
                if record.value is None:
                    jobs[record.partition].pop(job_id, None)
                else:
                    jobs[record.partition][job_id] = TunerJob.model_validate_json(record.value)
        return jobs

    async def save(self, changed: dict[UUID, tuple[int, TunerJob | None]]) -> None:
        """Write job_id -> (partition, state or None for a finished job); returns once Kafka
        acknowledged every record."""
        sent = [
            await self._producer.send(
                self.topic, key=str(job_id).encode(), partition=partition,
                value=job.model_dump_json().encode() if job is not None else None)
            for job_id, (partition, job) in changed.items()
        ]
        for delivery in sent:
            await delivery
