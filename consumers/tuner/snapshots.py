"""The tuners' compact state: the latest TunerJob of every job, on a compacted topic.

Why: a tuner that takes over a partition must know the state of the jobs on it without
folding the partition from offset 0 (start-up would grow with all history ever written).
The tuner group's committed offsets say how far the log was folded; this topic holds the fold
itself, one record per job keyed by job_id on the job's events partition (a finished job's is a
few hundred bytes, state.py), and one FORMAT record per partition. Kafka compaction keeps it to
about one record per job.

A partition whose snapshot lacks the current FORMAT record was written by an older tuner (which
dropped finished jobs) or holds a record this tuner cannot read: its state is rebuilt by folding
the partition from offset 0 once, rather than trusted.

Order of writes: the snapshot of a partition is written (and acknowledged) before its offset
is committed, so it is never behind the committed offset; folding from the committed offset
over a snapshot that is a little ahead changes nothing (the fold is monotone, state.py).
"""

from __future__ import annotations

from uuid import UUID

from aiokafka import AIOKafkaProducer

import structlog

from adapters.event_log import Security, read_to_end
from consumers.tuner.state import TunerJob

log = structlog.get_logger("tuner")
# Written once per partition by a tuner that keeps every job (finished ones slim).
FORMAT_KEY, FORMAT = b"format", b'{"version": 2}'


class Snapshots:
    def __init__(self, bootstrap_servers: str, topic: str, security: Security = None):
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.security = security
        self._unreadable: dict[int, set[bytes | None]] = {}  # partition -> keys of records that did not read
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=5,
            **(security or {}))

    async def start(self) -> None:
        await self._producer.start()

    async def close(self) -> None:
        await self._producer.stop()

    async def load(self, partitions: set[int]) -> dict[int, dict[UUID, TunerJob] | None]:
        """The jobs of these events partitions, as last saved, by partition; None for a partition
        whose snapshot cannot be trusted (older format, or a record that does not read)."""
        latest: dict[int, dict[bytes | None, bytes | None]] = {p: {} for p in partitions}
        async for records in read_to_end(self.bootstrap_servers, self.topic, partitions=sorted(partitions),
                                         security=self.security):
            for record in records:
                latest[record.partition][record.key] = record.value
        found = {}
        for p, values in latest.items():
            jobs, trusted = {}, values.get(FORMAT_KEY) == FORMAT
            for key, value in values.items():
                if key == FORMAT_KEY or value is None:
                    continue
                try:
                    jobs[UUID(key.decode())] = TunerJob.model_validate_json(value)
                except Exception as exc:  # another writer's record, or a spec today's rules refuse
                    log.warning("snapshot record not read; the partition is folded from 0", partition=p,
                                error=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
                    self._unreadable.setdefault(p, set()).add(key)
                    trusted = False
            found[p] = jobs if trusted else None
        return found

    async def save(self, changed: dict[UUID, tuple[int, TunerJob]], partitions: set[int] = frozenset()) -> None:
        """Write job_id -> (partition, state); for `partitions` (folded whole again), also the
        FORMAT record and a tombstone for each record that did not read. Returns once Kafka
        acknowledged every record."""
        sent = [await self._producer.send(self.topic, key=key, partition=p, value=None)
                for p in partitions for key in self._unreadable.pop(p, ())]
        sent += [await self._producer.send(self.topic, key=FORMAT_KEY, partition=p, value=FORMAT) for p in partitions]
        sent += [
            await self._producer.send(self.topic, key=str(job_id).encode(), partition=partition,
                                      value=job.model_dump_json().encode())
            for job_id, (partition, job) in changed.items()
        ]
        for delivery in sent:
            await delivery
