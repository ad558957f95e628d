"""Which partition a job's events belong on, and the check every consumer makes.

One job's events must sit on one partition, or live consumption and a replay could apply them
in different orders. The gateway and the tuner (aiokafka) and the Java client pick a
partition with murmur2 of the key; librdkafka-based clients (kcat, confluent-kafka, most
non-JVM clients) default to CRC32 and would scatter a job's events. So every consumer checks
that a record sits where murmur2 puts its key, and a misrouted record is dead-lettered with a
reason that names the fix, the same way live and in replay.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2

# What an outside producer sets so its records land where ours do (see docs/events.md).
PARTITIONER_FIX = (
    "produce with the murmur2 partitioner, as the Java client and aiokafka do "
    "(librdkafka/kcat/confluent-kafka: partitioner=murmur2_random; "
    "Go franz-go: kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(...)) or sarama's NewReferenceHashPartitioner)"
)


@lru_cache(maxsize=1 << 16)  # murmur2 in Python costs ~11 us; a job's key comes back with every event
def expected_partition(key: bytes, partitions: int) -> int:
    """Kafka's default for a keyed record: murmur2 of the key, made positive, modulo partitions."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def misrouted(key: bytes | None, partition: int, partitions: int, job_id: str) -> str | None:
    """Why a record of job `job_id` must not be applied where it sits, or None when it may."""
    if key is None:
        return f"the record has no key; key it by its job_id ({job_id}) so the job's events share a partition"
    if key.decode(errors="replace") != job_id:
        return f"the record's key {key[:80]!r} is not its job_id {job_id}; key every event by its job_id"
    want = expected_partition(key, partitions)
    if partition != want:
        return (f"the record sits on partition {partition}, but its key maps to partition {want} of "
                f"{partitions} (murmur2): a job's events must share one partition; {PARTITIONER_FIX}")
    return None
