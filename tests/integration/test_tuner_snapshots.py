"""The tuners' state topic on the real broker: a snapshot is trusted only in the current format
and when every record reads; otherwise the partition is folded from offset 0, once, after which
the snapshot is whole again (the unreadable records tombstoned)."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer

from adapters.event_log import ensure_topics
from consumers.tuner.snapshots import Snapshots
from consumers.tuner.state import TunerJob
from schemas.job_spec import JobSpec
from schemas.topics import Topic
from tests.support.specs import example_spec


async def test_an_untrusted_snapshot_is_refolded_once_then_trusted(stack):
    topic = Topic(f"test-snapshots-{uuid.uuid4().hex[:8]}", 2, {"cleanup.policy": "compact"})
    await ensure_topics(stack.kafka, (topic,))
    job = TunerJob(job_id=uuid.uuid4(), spec=JobSpec.model_validate(example_spec()), status="running")
    legacy = {"job_id": str(uuid.uuid4()), "spec": job.spec.model_dump(mode="json"), "started": True, "finished": True}
    raw = AIOKafkaProducer(bootstrap_servers=stack.kafka)
    await raw.start()
    try:  # partition 0: an older tuner's record (no FORMAT); partition 1: a record that is no job
        await raw.send_and_wait(topic.name, TunerJob.model_validate(legacy).model_dump_json().encode(),
                                key=legacy["job_id"].encode(), partition=0)
        await raw.send_and_wait(topic.name, b"not a job", key=b"\xff\xfe hostile", partition=1)
    finally:
        await raw.stop()

    snapshots = Snapshots(stack.kafka, topic.name)
    await snapshots.start()
    try:
        assert await snapshots.load({0, 1}) == {0: None, 1: None}  # both folded from offset 0
        assert TunerJob.model_validate(legacy).status == "completed"  # what an older snapshot meant
        # Folded whole again (the refold re-saves every job it met): the FORMAT record, and the
        # hostile record's tombstone, go with the state; the next owner trusts it.
        refolded = TunerJob.model_validate(legacy)
        await snapshots.save({job.job_id: (1, job), refolded.job_id: (0, refolded)}, partitions={0, 1})
        assert await snapshots.load({0, 1}) == {0: {refolded.job_id: refolded}, 1: {job.job_id: job}}
    finally:
        await snapshots.close()
