"""Records must sit where murmur2 puts their job_id, the same check live and in replay."""

from __future__ import annotations

import uuid
import zlib
from types import SimpleNamespace

import pytest
from aiokafka.partitioner import DefaultPartitioner

from adapters.partitioning import expected_partition, misrouted
from consumers.records import LoggedEvent, Refused, read_record
from schemas import events as ev

# Kafka's own test vectors for Utils.murmur2 (clients/src/test/java/.../UtilsTest.java).
JAVA_MURMUR2 = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
                b"a-little-bit-longer-string": -1486304829, b"abc": 479470107}


@pytest.mark.parametrize(("key", "signed"), JAVA_MURMUR2.items())
def test_partition_is_the_java_clients(key, signed):
    for partitions in (1, 6, 7, 100):
        assert expected_partition(key, partitions) == (signed & 0x7FFFFFFF) % partitions


def test_partition_is_aiokafkas_default_for_keyed_records():
    parts = list(range(6))
    for _ in range(200):
        key = str(uuid.uuid4()).encode()
        assert expected_partition(key, 6) == DefaultPartitioner()(key, parts, parts)


def _record(event: ev.Event, partition: int, key: bytes | None = ...) -> SimpleNamespace:
    return SimpleNamespace(value=ev.serialize_event(event), key=event.key() if key is ... else key,
                           partition=partition, offset=7, topic="t")


def test_a_record_on_its_keys_partition_is_read_and_a_crc32_routed_one_is_refused_naming_the_fix():
    # Find a job whose CRC32 partition (librdkafka's default) differs from murmur2's.
    while True:
        event = ev.JobStarted(job_id=uuid.uuid4(), source="other-system")
        right, crc32 = expected_partition(event.key(), 6), zlib.crc32(event.key()) % 6
        if right != crc32:
            break
    assert isinstance(read_record(_record(event, right), 6), LoggedEvent)
    refused = read_record(_record(event, crc32), 6)
    assert isinstance(refused, Refused)
    assert f"partition {crc32}" in refused.reason and f"maps to partition {right}" in refused.reason
    assert "murmur2_random" in refused.reason


def test_a_record_without_the_job_id_as_key_is_refused():
    event = ev.JobStarted(job_id=uuid.uuid4(), source="other-system")
    assert "has no key" in misrouted(None, 0, 6, str(event.job_id))
    other = str(uuid.uuid4()).encode()
    reason = read_record(_record(event, expected_partition(other, 6), key=other), 6).reason
    assert "is not its job_id" in reason
