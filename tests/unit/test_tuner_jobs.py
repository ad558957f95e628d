"""A job's life in the tuner without Kafka, the group or Ray (consumers/tuner/job_lifecycle.py,
consumers/tuner/claims.py): a fake publisher, a fake group and fake experiments on the real
worker-thread bridge. The real path runs in tests/e2e (test_tuning_e2e, test_tuner_group)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
from aiokafka.errors import KafkaConnectionError

from consumers.tuner.claims import ASK_AGAIN, Claims
from consumers.tuner.job_lifecycle import JobLifecycle
from consumers.tuner.ledger import PartitionLedger
from consumers.tuner.state import TunerJob, next_state
from schemas import events as ev
from schemas.job_spec import JobSpec
from tests.support.specs import example_spec
from tests.unit.fakes import FakePublisher

ME = "tuner-a"
DEADLINE_S = 10.0


def _trial(job_id, trial_id: str, status: str) -> ev.TrialUpdated:
    return ev.TrialUpdated(job_id=job_id, source="test", payload=ev.TrialUpdatedPayload(trial_id=trial_id, status=status))


def _claimed(job_id, tuner_id: str, generation: int) -> ev.JobClaimed:
    return ev.JobClaimed(job_id=job_id, source="test", claim=generation, payload=ev.JobClaimedPayload(
        tuner_id=tuner_id, generation=generation))


def _completed(job_id) -> ev.JobCompleted:
    return ev.JobCompleted(job_id=job_id, source="test", payload=ev.JobCompletedPayload(
        best_trial_id="t1", metric_name="eval_loss", best_metric=0.5))


def _job(ledger: PartitionLedger, *later, partition: int = 0) -> uuid.UUID:
    """A started job on `partition` of the ledger, with `later` events (made for its id) folded in."""
    job_id = uuid.uuid4()
    job: TunerJob | None = None
    for event in [ev.JobCreated(job_id=job_id, source="test",
                                payload=ev.JobCreatedPayload(spec=JobSpec.model_validate(example_spec()))),
                  ev.JobStarted(job_id=job_id, source="test"), *(make(job_id) for make in later)]:
        job = next_state(job, event)
    ledger.record(job, partition)
    return job_id


class FakeGroup:
    """Who the group says owns a partition: the answers in order, the last one for ever after."""

    def __init__(self, *answers):
        self.answers = list(answers)

    async def owner(self, partition: int) -> str | None:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


class Experiments:
    """Fake experiments, one per call in order: each gets the JobRun and returns an outcome
    (None: handed over), on the worker thread a real one runs on."""

    def __init__(self, *plays):
        self.plays = list(plays)
        self.calls = 0
        self.started = threading.Event()

    def __call__(self, run, seeds):
        play = self.plays[min(self.calls, len(self.plays) - 1)]
        self.calls += 1
        self.started.set()
        return play(run)


def _until_handed_over(run) -> None:
    run.running_trials = {"t1", "t2"}
    deadline = time.monotonic() + DEADLINE_S
    while not run.handing_over:
        assert time.monotonic() < deadline, "the run was never handed over"
        time.sleep(0.01)


def _lifecycle(experiments, group=None, publisher=None, max_jobs: int = 2):
    ledger, publisher = PartitionLedger(), publisher or FakePublisher()
    claims = Claims(ME, ledger, publisher.publish, (group or FakeGroup(ME)).owner)
    return JobLifecycle(ledger, claims, publisher.publish, experiments, max_jobs, retry_after_s=0.01), publisher


async def _until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def _published(publisher, job_id, kind=None) -> list[ev.Event]:
    return [e for e in publisher.published if e.job_id == job_id and (kind is None or isinstance(e, kind))]


async def test_a_job_runs_under_its_next_claim_and_everything_it_publishes_carries_it():
    def play(run):
        run.publish(_trial(run.job_id, "t1", "running"))  # from the worker thread, as Ray's callback does
        return _completed(run.job_id)

    jobs, publisher = _lifecycle(Experiments(play))
    # Its last owner vanished with trial t0 running.
    job_id = _job(jobs.ledger, lambda j: _claimed(j, "gone", 1), lambda j: _trial(j, "t0", "running"))
    jobs.schedule(job_id)
    await jobs.slots.running[job_id]
    claim, stale, running, outcome = _published(publisher, job_id)
    assert (claim.type, claim.payload.tuner_id, claim.payload.generation) == ("JobClaimed", ME, 2)
    assert (stale.payload.trial_id, stale.payload.status, running.payload.trial_id) == ("t0", "stale", "t1")
    assert outcome.type == "JobCompleted"
    assert {e.claim for e in (claim, stale, running, outcome)} == {2}
    assert jobs.claims.made_here(claim) and not jobs.claims.made_here(_claimed(job_id, "gone", 1))
    assert jobs.ledger.jobs[job_id].owner == ME and not jobs.slots.running


async def test_an_experiment_that_raises_fails_its_job_and_the_next_job_runs():
    def boom(run):
        raise RuntimeError("the pack actor died")

    jobs, publisher = _lifecycle(Experiments(boom, lambda run: _completed(run.job_id)), max_jobs=1)
    first, second = _job(jobs.ledger), _job(jobs.ledger)
    jobs.schedule(first)
    jobs.schedule(second)
    assert jobs.slots.waiting == [second]  # one slot: the second waits
    await _until(lambda: not jobs.slots.holds(first) and not jobs.slots.holds(second), "both jobs to end")
    (failed,) = _published(publisher, first, ev.JobFailed)
    assert "RuntimeError: the pack actor died" in failed.payload.error and failed.claim == 1
    assert [e.type for e in _published(publisher, second)] == ["JobClaimed", "JobCompleted"]


async def test_a_handed_over_run_marks_its_running_trials_preempted_and_publishes_no_outcome():
    experiments = Experiments(_until_handed_over)
    jobs, publisher = _lifecycle(experiments)
    job_id = _job(jobs.ledger, partition=3)
    jobs.schedule(job_id)
    assert await asyncio.to_thread(experiments.started.wait, DEADLINE_S)
    await jobs.hand_over({3}, timeout_s=DEADLINE_S)
    claim, *preempted = _published(publisher, job_id)
    assert [(e.payload.trial_id, e.payload.status, e.claim) for e in preempted] == [
        ("t1", "preempted", 1), ("t2", "preempted", 1)]
    assert f"tuner {ME} handed the job over" in preempted[0].payload.reason
    assert not jobs.slots.holds(job_id) and experiments.calls == 1  # not run again here


async def test_a_job_whose_partition_is_being_released_does_not_start():
    experiments = Experiments(lambda run: _completed(run.job_id))
    jobs, publisher = _lifecycle(experiments)
    job_id = _job(jobs.ledger, partition=1)
    jobs.releasing.add(1)
    jobs.schedule(job_id)
    await jobs.slots.running[job_id]
    assert publisher.published == [] and experiments.calls == 0


async def test_a_claim_kafka_refuses_is_published_again_while_the_job_is_ours():
    class RefusesOnce(FakePublisher):
        refused = False

        async def publish(self, event):
            if not self.refused:
                self.refused = True
                raise KafkaConnectionError()
            await super().publish(event)

    jobs, publisher = _lifecycle(Experiments(lambda run: _completed(run.job_id)), publisher=RefusesOnce())
    job_id = _job(jobs.ledger)
    jobs.schedule(job_id)
    await _until(lambda: _published(publisher, job_id, ev.JobCompleted), "the job to complete on its retry")
    assert [(e.type, e.claim) for e in _published(publisher, job_id)] == [("JobClaimed", 1), ("JobCompleted", 1)]


async def test_cancelling_a_job_that_waits_for_a_slot_ends_it_without_running_it():
    release = threading.Event()
    experiments = Experiments(lambda run: release.wait(DEADLINE_S) and _completed(run.job_id))
    jobs, publisher = _lifecycle(experiments, max_jobs=1)
    running = _job(jobs.ledger)
    waiting = _job(jobs.ledger, lambda j: _claimed(j, "gone", 1), lambda j: _trial(j, "t9", "running"))
    jobs.schedule(running)
    jobs.schedule(waiting)
    jobs.cancel(waiting)
    await _until(lambda: _published(publisher, waiting, ev.JobCancelled), "the waiting job's JobCancelled")
    stopped, cancelled = _published(publisher, waiting)
    assert (stopped.payload.trial_id, stopped.payload.status, stopped.claim) == ("t9", "stopped", None)
    assert cancelled.claim is None and jobs.slots.waiting == []
    release.set()
    await _until(lambda: not jobs.slots.holds(running), "the running job to end")
    assert experiments.calls == 1  # the cancelled job never ran


async def test_a_claim_no_member_backs_restarts_the_running_job_under_a_newer_claim():
    experiments = Experiments(_until_handed_over, lambda run: _completed(run.job_id))
    # The group first cannot say (rebalancing), then says this tuner owns the partition.
    jobs, publisher = _lifecycle(experiments, group=FakeGroup(None, ME))
    job_id = _job(jobs.ledger)
    jobs.schedule(job_id)
    assert await asyncio.to_thread(experiments.started.wait, DEADLINE_S)
    forged = _claimed(job_id, "forger", 2)
    jobs.ledger.record(next_state(jobs.ledger.jobs[job_id], forged))  # folded by the consumer
    assert not jobs.claims.made_here(forged)
    jobs.settle_claim(job_id, 0, "forger")
    await _until(lambda: _published(publisher, job_id, ev.JobCompleted), "the job to complete under a new claim")
    assert [(e.type, e.claim) for e in _published(publisher, job_id)] == [
        ("JobClaimed", 1), ("TrialUpdated", 1), ("TrialUpdated", 1),  # handed over under the outbid claim
        ("JobClaimed", 3), ("JobCompleted", 3)]
    assert experiments.calls == 2 and jobs.reclaim == set()


async def test_a_claim_the_group_backs_takes_the_job_away_from_this_tuner():
    experiments = Experiments(_until_handed_over)
    jobs, publisher = _lifecycle(experiments, group=FakeGroup("tuner-b"))
    job_id = _job(jobs.ledger)
    jobs.schedule(job_id)
    assert await asyncio.to_thread(experiments.started.wait, DEADLINE_S)
    jobs.settle_claim(job_id, 0, "tuner-b")
    await _until(lambda: not jobs.slots.holds(job_id), "the run to stop")
    assert [e.payload.status for e in _published(publisher, job_id, ev.TrialUpdated)] == ["preempted"] * 2
    assert experiments.calls == 1 and not _published(publisher, job_id, ev.JobCompleted)


@pytest.mark.parametrize(("answer", "partition", "verdict"), [
    (KafkaConnectionError(), 0, ASK_AGAIN),  # the coordinator cannot be reached
    (OSError("no route to host"), 0, ASK_AGAIN),
    (None, 0, ASK_AGAIN),  # rebalancing: nobody holds the partition
    ("tuner-b", 0, "hand over"),  # the claimer's partition now
    (ME, 0, "claim again"),  # ours, and the job runs here: the claim is not backed
    (ME, 5, "nothing"),  # the job is on another partition
])
async def test_a_claim_this_tuner_did_not_make_is_settled_by_who_the_group_says_owns_the_partition(
        answer, partition, verdict):
    ledger = PartitionLedger()
    claims = Claims(ME, ledger, FakePublisher().publish, FakeGroup(answer).owner)
    job_id = _job(ledger)
    assert await claims.settle(job_id, partition) == verdict
