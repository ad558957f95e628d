"""The event log's topics and reading it from offset 0, as the tuner's catch-up, replay and
auditors do: no consumer group, so the live consumers' committed offsets are untouched, and
only up to the end offsets seen at the start, so a read of a busy topic still ends.

Every function takes `security`, the process's `adapters.kafka_security.client_options(settings)`
({} on a plaintext broker), and builds its clients with it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from schemas.topics import Topic

Security = Mapping[str, Any] | None  # aiokafka kwargs from adapters.kafka_security.client_options


async def ensure_topics(bootstrap_servers: str, topics: tuple[Topic, ...], security: Security = None) -> None:
    """Create the topics that are missing, with their partition counts and retention: 3
    replicas and min.insync.replicas=2 on a cluster of 3 brokers or more (with the producers'
    acks=all, an acknowledged event is on two brokers), else one replica per broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000, **(security or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        replicas = min(3, len((await admin.describe_cluster())["brokers"]))
        durability = {"min.insync.replicas": "2"} if replicas >= 3 else {}
        missing = [
            NewTopic(t.name, num_partitions=t.partitions, replication_factor=replicas,
                     topic_configs={**t.config, **durability})
            for t in topics
            if t.name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


async def partition_ids(bootstrap_servers: str, topic: str, security: Security = None) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **(security or {}))
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for p in described["partitions"])


async def read_to_end(
    bootstrap_servers: str, topic: str, max_records: int = 5000, partitions: list[int] | None = None,
    security: Security = None,
) -> AsyncIterator[tuple[ConsumerRecord, ...]]:
    """Yield batches of records, each partition in offset order, up to today's end offsets
    (of every partition, or of those given)."""
    ids = partitions if partitions is not None else await partition_ids(bootstrap_servers, topic, security)
    parts = [TopicPartition(topic, p) for p in ids]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False, **(security or {})
    )
    await consumer.start()
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        remaining = {tp for tp in parts if end[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=max_records)
            records = tuple(
                r
                for tp in sorted(batches, key=lambda tp: tp.partition)
                for r in batches[tp]
                if r.offset < end[tp]
            )
            if records:
                yield records
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()


async def end_offsets(bootstrap_servers: str, topic: str, security: Security = None) -> dict[int, int]:
    parts = [TopicPartition(topic, p) for p in await partition_ids(bootstrap_servers, topic, security)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, **(security or {}))
    await consumer.start()
    try:
        return {tp.partition: off for tp, off in (await consumer.end_offsets(parts)).items()}
    finally:
        await consumer.stop()


async def group_members(bootstrap_servers: str, group_id: str, security: Security = None) -> list[dict]:
    """The live members of a consumer group: client id, host and assigned partitions (an
    empty list while the group rebalances or when nobody is in it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000, **(security or {}))
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group_id])
    finally:
        await admin.close()
    members = []
    for group in response.groups:
        for member in group[5]:  # (member_id, client_id, client_host, metadata, assignment)
            assignment = ConsumerProtocolMemberAssignment.decode(member[4]) if member[4] else None
            members.append({
                "member_id": member[0], "client_id": member[1], "host": member[2],
                "partitions": sorted(tp.partition for tp in assignment.partitions()) if assignment else [],
            })
    return members
