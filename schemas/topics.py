"""Kafka topics: names, partition counts and retention.

Every job and trial event goes to one topic keyed by job_id, so one job's events stay in one
partition and in order. The topic keeps its data forever: the log is the system of record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_PREFIX = os.environ.get("TUNIX_TOPIC_PREFIX", "tunix.tuning")


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    config: dict[str, str]


EVENTS = Topic(f"{_PREFIX}.events", partitions=6, config={"retention.ms": "-1"})
DEAD_LETTER = Topic(f"{_PREFIX}.events.dlq", partitions=1, config={"retention.ms": "-1"})
ALL_TOPICS = (EVENTS, DEAD_LETTER)

# Headers a dead-lettered message carries next to its original key and bytes.
DLQ_REASON_HEADER = "tunix-dlq-reason"
DLQ_ORIGIN_HEADER = "tunix-dlq-origin"


async def ensure_topics(bootstrap_servers: str, topics: tuple[Topic, ...] = ALL_TOPICS) -> None:
    """Create the topics that are missing, with their partition counts and retention."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(t.name, num_partitions=t.partitions, replication_factor=1, topic_configs=t.config)
            for t in topics
            if t.name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()
