"""An outside producer on librdkafka's default partitioner (CRC32) puts a job's events on
another partition than murmur2 does: consumers dead-letter such a record with the fix named,
the same way live and in replay, so replay still equals live. With partitioner=murmur2_random
the same client's events are projected."""

from __future__ import annotations

import subprocess
import sys
import uuid
import zlib

from confluent_kafka import Producer
from sqlalchemy import select, text

from adapters.database import make_engine
from adapters.partitioning import expected_partition
from schemas import events as ev
from schemas import tables
from schemas.job_spec import JobSpec
from schemas.topics import DLQ_REASON_HEADER
from tests.conftest import REPO
from tests.support.kafka_log import read_all
from tests.support.session import TOPICS
from tests.support.specs import example_spec
from tests.support.waiting import eventually


def _created(job_id: uuid.UUID) -> ev.JobCreated:
    return ev.JobCreated(job_id=job_id, source="librdkafka-client",
                         payload=ev.JobCreatedPayload(spec=JobSpec.model_validate(example_spec(name="outside"))))


def _produce(bootstrap: str, event: ev.Event, **config) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", **config})
    producer.produce(TOPICS.events.name, key=event.key(), value=ev.serialize_event(event))
    assert producer.flush(30) == 0


async def test_crc32_routed_event_is_dead_lettered_and_replay_equals_live(stack, service_env, client, db, tmp_path):
    partitions = TOPICS.events.partitions
    misrouted = next(j for j in iter(uuid.uuid4, None)
                     if zlib.crc32(str(j).encode()) % partitions != expected_partition(str(j).encode(), partitions))
    _produce(stack.kafka, _created(misrouted))  # librdkafka's default: consistent_random (CRC32)
    routed = uuid.uuid4()
    _produce(stack.kafka, _created(routed), partitioner="murmur2_random")

    async def dead_letter():
        return [r for r in await read_all(stack.kafka, TOPICS.dead_letter.name) if r.key == str(misrouted).encode()]
    (letter,) = await eventually(dead_letter, 30, "the misrouted record dead-lettered")
    reason = dict(letter.headers)[DLQ_REASON_HEADER].decode()
    assert f"maps to partition {expected_partition(str(misrouted).encode(), partitions)}" in reason
    assert "partitioner=murmur2_random" in reason
    await eventually(lambda: _status(client, routed, 200), 30, "the murmur2-routed job projected")
    assert (await client.get(f"/api/tuning/jobs/{misrouted}")).status_code == 404

    schema = f"replay_{uuid.uuid4().hex[:8]}"
    subprocess.run([sys.executable, "-m", "consumers.projector.replay", "--schema", schema],
                   env=service_env, cwd=REPO, check=True, capture_output=True)
    rebuilt = make_engine(service_env["DATABASE_URL"], schema=schema)
    try:
        for job_id in (misrouted, routed):
            assert await _job_row(rebuilt, job_id) == await _job_row(db, job_id)
        assert await _job_row(rebuilt, misrouted) is None
    finally:
        await rebuilt.dispose()
        async with db.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


async def _status(client, job_id, code: int) -> bool:
    return (await client.get(f"/api/tuning/jobs/{job_id}")).status_code == code


async def _job_row(engine, job_id):
    async with engine.connect() as conn:
        row = (await conn.execute(select(tables.jobs).where(tables.jobs.c.job_id == job_id))).first()
    return None if row is None else dict(row._mapping)
