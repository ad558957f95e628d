"""The tuner's consumer side without Kafka (consumers/tuner/service.Tuner): which records it
folds and what it asks of its jobs for each (schedule, cancel, settle a claim). The jobs and
the consumer are fakes; their real counterparts run in tests/e2e/test_tuner_group.py."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import ConsumerRecord

from adapters.settings import Settings
from consumers.tuner.claims import Claims
from consumers.tuner.service import Tuner
from schemas import events as ev
from schemas.job_spec import JobSpec
from tests.support.specs import example_spec
from tests.unit.fakes import FakePublisher


class RecordingJobs:
    """Stands in for consumers/tuner/job_lifecycle.JobLifecycle: what the tuner asked of it."""

    def __init__(self):
        self.asked: list[tuple] = []

    def schedule(self, job_id):
        self.asked.append(("schedule", job_id))

    def cancel(self, job_id):
        self.asked.append(("cancel", job_id))

    def settle_claim(self, job_id, partition, claimer):
        self.asked.append(("settle", job_id, claimer))


class OnePartition:
    def partitions_for_topic(self, topic):
        return {0}


@pytest.fixture
async def tuner():
    tuner = Tuner(Settings(tuner_id="tuner-a"))  # connects to nothing until it runs
    tuner.jobs, tuner.consumer = RecordingJobs(), OnePartition()
    tuner.ledger.assign(0, {}, committed=0, end=0, now=0.0)  # an empty partition: live at once
    tuner._go_live()
    yield tuner
    await tuner.snapshots.close()


def _record(value: bytes, offset: int, key: bytes = b"k", partition: int = 0) -> ConsumerRecord:
    return ConsumerRecord(topic="t", partition=partition, offset=offset, timestamp=0, timestamp_type=0, key=key,
                          value=value, checksum=None, serialized_key_size=len(key), serialized_value_size=len(value),
                          headers=())


def _fold_all(tuner: Tuner, *events: ev.Event, first_offset: int = 0) -> None:
    for offset, event in enumerate(events, first_offset):
        tuner._fold(_record(ev.serialize_event(event), offset, event.key()))


def _created(job_id) -> ev.JobCreated:
    return ev.JobCreated(job_id=job_id, source="test", payload=ev.JobCreatedPayload(
        spec=JobSpec.model_validate(example_spec())))


def _claimed(job_id, tuner_id: str, generation: int) -> ev.JobClaimed:
    return ev.JobClaimed(job_id=job_id, source="test", claim=generation, payload=ev.JobClaimedPayload(
        tuner_id=tuner_id, generation=generation))


async def test_a_started_job_is_scheduled_and_a_cancel_or_a_foreign_claim_goes_to_its_run(tuner):
    job_id = uuid.uuid4()
    _fold_all(tuner, _created(job_id), ev.JobStarted(job_id=job_id, source="test"),
              _claimed(job_id, "tuner-b", 1), ev.JobCancelRequested(job_id=job_id, source="test"))
    assert tuner.jobs.asked == [("schedule", job_id), ("settle", job_id, "tuner-b"), ("cancel", job_id)]
    assert tuner.ledger.jobs[job_id].cancel_requested and tuner.ledger.folded == {0: 4}


async def test_the_echo_of_its_own_claim_asks_nothing(tuner):
    job_id = uuid.uuid4()

    class EchoingPublisher(FakePublisher):
        async def publish(self, event):  # the consumer folds the echo while the claim is still publishing
            await super().publish(event)
            _fold_all(tuner, event, first_offset=2)

    publisher = EchoingPublisher()
    tuner.claims = Claims("tuner-a", tuner.ledger, publisher.publish, partition_owner=None)
    _fold_all(tuner, _created(job_id), ev.JobStarted(job_id=job_id, source="test"))
    await tuner.claims.claim(tuner.ledger.jobs[job_id])
    assert [e.type for e in publisher.published] == ["JobClaimed"] and tuner.ledger.folded == {0: 3}
    assert tuner.jobs.asked == [("schedule", job_id)]


async def test_records_that_are_not_events_are_skipped_and_the_tuner_goes_on(tuner):
    job_id = uuid.uuid4()
    tuner._fold(_record(b"\xff not json", 0))
    tuner._fold(_record(b'{"type": "JobStarted"}', 1))
    _fold_all(tuner, _created(job_id), ev.JobStarted(job_id=job_id, source="test"), first_offset=2)
    assert tuner.jobs.asked == [("schedule", job_id)] and tuner.ledger.folded == {0: 4}


async def test_records_of_a_partition_it_does_not_hold_or_folded_already_change_nothing(tuner):
    job_id = uuid.uuid4()
    _fold_all(tuner, _created(job_id), ev.JobStarted(job_id=job_id, source="test"))
    tuner._fold(_record(ev.serialize_event(ev.JobCancelRequested(job_id=job_id, source="test")), 1,
                        job_id.bytes))  # offset 1 again: folded already
    tuner._fold(_record(ev.serialize_event(ev.JobStarted(job_id=uuid.uuid4(), source="test")), 0, partition=7))
    assert tuner.jobs.asked == [("schedule", job_id)] and not tuner.ledger.jobs[job_id].cancel_requested


async def test_a_partition_catching_up_acts_only_once_folded_to_its_end(tuner):
    job_id = uuid.uuid4()
    tuner.ledger.assign(0, {}, committed=0, end=2, now=0.0)  # reassigned with two records to fold
    _fold_all(tuner, _created(job_id), ev.JobStarted(job_id=job_id, source="test"))
    assert tuner.jobs.asked == []  # caught up, but not yet live: the poll loop says when
    tuner._go_live()
    assert tuner.jobs.asked == [("schedule", job_id)]
