"""The tuner's bookkeeping without Kafka: the jobs of its partitions and how far each is folded
(consumers/tuner/ledger.PartitionLedger), and which jobs run or wait (JobSlots)."""

from __future__ import annotations

import uuid

from consumers.tuner.ledger import JobSlots, PartitionLedger
from consumers.tuner.state import TunerJob, next_state
from schemas import events as ev
from schemas.job_spec import JobSpec
from tests.support.specs import example_spec


def _created(job_id) -> ev.JobCreated:
    return ev.JobCreated(job_id=job_id, source="test",
                         payload=ev.JobCreatedPayload(spec=JobSpec.model_validate(example_spec())))


def _started(job_id) -> ev.JobStarted:
    return ev.JobStarted(job_id=job_id, source="test")


def _folded(*events) -> TunerJob:
    job = None
    for event in events:
        job = next_state(job, event)
    return job


def test_a_partition_acts_only_once_folded_to_the_end_it_had_when_assigned():
    ledger, job_id = PartitionLedger(), uuid.uuid4()
    ledger.assign(3, {}, committed=10, end=12, now=1.0)
    assert ledger.admits(3, 10) and ledger.fold(3, _created(job_id)) is None  # catching up: no action
    assert ledger.went_live() == []
    assert ledger.admits(3, 11) and ledger.fold(3, _started(job_id)) is None
    (live,) = ledger.went_live()
    assert (live.partition, live.since, [j.job_id for j in live.jobs]) == (3, 1.0, [job_id])  # started: it runs
    assert ledger.went_live() == []  # once
    cancel = ev.JobCancelRequested(job_id=job_id, source="test")
    assert ledger.admits(3, 12) and ledger.fold(3, cancel).cancel_requested  # live: the tuner acts on it


def test_records_fetched_before_a_rebalance_or_folded_already_are_not_admitted():
    ledger = PartitionLedger()
    ledger.assign(0, {}, committed=5, end=5, now=0.0)
    assert not ledger.admits(0, 4)  # folded already
    assert not ledger.admits(1, 0)  # not this tuner's partition
    assert ledger.admits(0, 5) and ledger.folded == {0: 6}


def test_an_untrusted_snapshot_is_folded_from_offset_0_and_marked_whole_once_caught_up():
    ledger = PartitionLedger()
    ledger.assign(2, None, committed=40, end=1, now=0.0)
    assert ledger.folded[2] == 0 and ledger.unmarked == {2}
    assert ledger.changes({2}) == ({}, set())  # still catching up: no mark yet
    ledger.admits(2, 0)
    ledger.went_live()
    assert ledger.changes({2}) == ({}, {2})
    ledger.saved(set(), {2})
    assert ledger.unmarked == set()


def test_a_save_writes_the_changed_jobs_of_its_partitions_and_a_hand_over_forgets_them():
    ledger, a, b = PartitionLedger(), uuid.uuid4(), uuid.uuid4()
    snapshot_job = _folded(_created(b), _started(b))
    ledger.assign(0, {}, committed=0, end=0, now=0.0)
    ledger.assign(1, {b: snapshot_job}, committed=7, end=7, now=0.0)
    ledger.went_live()
    ledger.admits(0, 0)
    ledger.fold(0, _created(a))
    assert ledger.fold(0, _created(a)) is None  # folding an event twice changes nothing
    changed, _ = ledger.changes({0, 1})
    assert set(changed) == {a} and changed[a][0] == 0  # the snapshot's job did not change
    ledger.saved({a}, set())
    assert ledger.changes({0, 1}) == ({}, set())
    assert ledger.offsets({0, 1, 5}) == {0: 1, 1: 7}
    assert ledger.owned() == 1  # b was started; a was only created
    ledger.forget({1})
    assert set(ledger.jobs) == {a} and ledger.offsets({1}) == {} and ledger.owned() == 0


def test_slots_run_up_to_the_limit_and_hand_a_freed_slot_to_the_first_waiting_job():
    slots, jobs = JobSlots(limit=1), [uuid.uuid4() for _ in range(3)]
    assert slots.has_room()
    slots.running[jobs[0]] = "task"
    assert not slots.has_room() and slots.holds(jobs[0])
    slots.wait(jobs[1])
    slots.wait(jobs[2])
    assert slots.unqueue(jobs[2]) and not slots.unqueue(jobs[2])  # a cancelled waiting job leaves the queue
    assert slots.ended(jobs[0]) == jobs[1] and slots.ended(jobs[1]) is None
    slots.wait(jobs[2])
    slots.drop_waiting({4}, {jobs[2]: 4})  # its partition was handed over
    assert slots.waiting == []
