"""The tuner's pure parts: its view of a job folded from the log, and which TrialUpdated
events the Ray callback sends (fake trials; the real path runs in test_tuning_e2e)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from consumers.tuner.state import TunerJob, next_state
from producers.job_run import JobRun
from producers.trial_events import TrialEvents
from schemas import events as ev
from schemas.job_spec import JobSpec
from tests.support.specs import example_spec


def _spec() -> JobSpec:
    return JobSpec.model_validate(example_spec())


def _trial_update(job_id, trial_id: str, status: str) -> ev.TrialUpdated:
    return ev.TrialUpdated(job_id=job_id, source="test",
                           payload=ev.TrialUpdatedPayload(trial_id=trial_id, status=status))


def test_the_folded_job_knows_which_trials_ended():
    job_id = uuid.uuid4()
    spec = JobSpec.model_validate(example_spec())
    log = [
        ev.JobCreated(job_id=job_id, source="test", payload=ev.JobCreatedPayload(spec=spec)),
        ev.JobStarted(job_id=job_id, source="test"),
        _trial_update(job_id, "t1", "running"), _trial_update(job_id, "t2", "running"),
        _trial_update(job_id, "t1", "completed"), _trial_update(job_id, "t3", "failed"),
    ]
    job = None
    for event in log:
        job = next_state(job, event)
    assert job.should_run and job.ended_trials == {"t1", "t3"}
    assert next_state(job, ev.JobCompleted(job_id=job_id, source="test", payload=ev.JobCompletedPayload(
        best_trial_id="t1", metric_name="score", best_metric=1.0))).should_run is False


def _fake_trial(trial_id: str, status: str):
    return SimpleNamespace(trial_id=trial_id, status=status, config={"learning_rate": 0.01},
                           last_result={"training_iteration": 2, "score": 50.0}, path=f"/jobs/j/{trial_id}")


def test_a_resumed_experiment_sends_nothing_for_trials_whose_end_is_on_the_log():
    job_id, sent = uuid.uuid4(), []
    with JobRun.open(job_id, sent.append, _spec(), ended_on_log=frozenset({"done-on-log"})):
        callback = TrialEvents(job_id)
        rerun, fresh = _fake_trial("done-on-log", "RUNNING"), _fake_trial("fresh", "RUNNING")
        callback.on_step_begin(0, [rerun, fresh])
        for trial in (rerun, fresh):
            callback.on_trial_start(0, [rerun, fresh], trial)
            callback.on_trial_result(0, [rerun, fresh], trial, trial.last_result)
            callback.on_trial_complete(0, [rerun, fresh], trial)
        callback.on_trial_result(0, [rerun, fresh], fresh, fresh.last_result)  # after its end
        callback.on_experiment_end([rerun, fresh])
    assert [(e.payload.trial_id, e.payload.status) for e in sent] == [
        ("fresh", "running"), ("fresh", "running"), ("fresh", "completed")]
    assert sent[-1].payload.artifact_path == "/jobs/j/runs/fresh"
    assert JobRun.find(job_id) is None  # removed when the run ended


def test_a_cancelled_run_stops_its_trials_with_the_reason_and_non_finite_metrics_stay_out():
    job_id, sent = uuid.uuid4(), []
    with JobRun.open(job_id, sent.append, _spec()) as run:
        callback = TrialEvents(job_id)
        diverged = _fake_trial("t", "RUNNING")
        diverged.last_result = {"training_iteration": 1, "eval_loss": float("nan"), "train_loss": 2.0}
        callback.on_trial_start(0, [diverged], diverged)
        run.cancel()
        callback.on_trial_complete(0, [diverged], diverged)
    assert [(e.payload.status, e.payload.reason) for e in sent] == [("running", None), ("stopped", "job cancelled")]
    assert sent[-1].payload.metrics == {"train_loss": 2.0}
    ev.parse_event(ev.serialize_event(sent[-1]))  # still a valid event on the wire


def _claimed(job_id, tuner: str, generation: int, at, spent: float = 0.0) -> ev.JobClaimed:
    return ev.JobClaimed(job_id=job_id, source="test", claim=generation, occurred_at=at,
                         payload=ev.JobClaimedPayload(tuner_id=tuner, generation=generation, budget_spent_s=spent))


def test_a_claim_fences_the_previous_owner_and_counts_its_budget_from_the_log():
    from datetime import datetime, timedelta, timezone

    from consumers.tuner.state import claim_event

    job_id, t0 = uuid.uuid4(), datetime(2026, 1, 1, tzinfo=timezone.utc)
    spec = JobSpec.model_validate(example_spec(time_budget_s=600))
    job = None
    for event in [
        ev.JobCreated(job_id=job_id, source="test", payload=ev.JobCreatedPayload(spec=spec)),
        ev.JobStarted(job_id=job_id, source="test"),
        _claimed(job_id, "a", 1, t0),
        ev.TrialUpdated(job_id=job_id, source="test", claim=1, occurred_at=t0 + timedelta(seconds=40),
                        payload=ev.TrialUpdatedPayload(trial_id="t1", status="running")),
    ]:
        job = next_state(job, event)
    assert job.owner == "a" and job.live_trials == {"t1"} and job.spent_s() == 40.0

    takeover = claim_event(job, "b", "test")  # a died: b claims with what the log says a spent
    assert takeover.claim == takeover.payload.generation == 2 and takeover.payload.budget_spent_s == 40.0
    job = next_state(job, takeover)
    late = ev.TrialUpdated(job_id=job_id, source="test", claim=1, occurred_at=t0 + timedelta(seconds=500),
                           payload=ev.TrialUpdatedPayload(trial_id="t1", status="completed"))
    assert next_state(job, late) is job  # a's late event is fenced: nothing changes
    assert next_state(job, _claimed(job_id, "a", 2, t0)) is job  # a stale claim too
    resumed = ev.TrialUpdated(job_id=job_id, source="test", claim=2,
                              occurred_at=takeover.occurred_at + timedelta(seconds=30),
                              payload=ev.TrialUpdatedPayload(trial_id="t1", status="completed"))
    job = next_state(job, resumed)
    assert job.ended_trials == {"t1"} and not job.live_trials
    assert abs(job.spent_s() - 70.0) < 1e-6  # 40 s under a, 30 s under b


def test_the_fold_is_idempotent_so_a_snapshot_ahead_of_the_offsets_is_harmless():
    job_id = uuid.uuid4()
    spec = JobSpec.model_validate(example_spec())
    log = [
        ev.JobCreated(job_id=job_id, source="test", payload=ev.JobCreatedPayload(spec=spec)),
        ev.JobStarted(job_id=job_id, source="test"),
        _claimed(job_id, "a", 1, ev.utc_now()),
        _trial_update(job_id, "t1", "running"), _trial_update(job_id, "t1", "completed"),
    ]
    once = None
    for event in log:
        once = next_state(once, event)
    twice = TunerJob.model_validate_json(once.model_dump_json())  # the snapshot, read back
    for event in log[2:]:  # folded again from an older committed offset
        twice = next_state(twice, event)
    assert twice == once


def test_the_projector_ignores_events_of_a_replaced_owner():
    from service.read.projection import fenced, project_job

    job_id = uuid.uuid4()
    spec = JobSpec.model_validate(example_spec())
    row = project_job(None, ev.JobCreated(job_id=job_id, source="test", payload=ev.JobCreatedPayload(spec=spec)))
    row = project_job(row, ev.JobStarted(job_id=job_id, source="test"))
    row = project_job(row, _claimed(job_id, "b", 2, ev.utc_now()))
    assert (row["owner"], row["claim"]) == ("b", 2)
    old = ev.JobCompleted(job_id=job_id, source="test", claim=1, payload=ev.JobCompletedPayload(
        best_trial_id="t1", metric_name="score", best_metric=1.0))
    assert fenced(row, old) and fenced(row, _claimed(job_id, "a", 2, ev.utc_now()))
    assert not fenced(row, old.model_copy(update={"claim": 2}))
    assert not fenced(row, ev.JobCancelRequested(job_id=job_id, source="gateway"))  # no claim: never fenced


def test_a_request_no_node_can_meet_is_named_with_what_the_cluster_has():
    from consumers.tuner.runner import unmet_request

    cluster = {"CPU": 8.0, "GPU": 1.0, "site_b": 2.0}
    assert unmet_request({"CPU": 2, "GPU": 0.5, "site_b": 1}, cluster) is None
    assert unmet_request({"CPU": 1, "GPU": 2}, cluster) == "a trial asks for GPU=2 but the whole Ray cluster has GPU=1"
    assert unmet_request({"CPU": 1, "GPU": 0, "tpu": 1}, cluster) == (
        "a trial asks for tpu=1 but the whole Ray cluster has tpu=0")


def test_a_claim_is_settled_by_who_the_group_assigned_the_partition():
    from consumers.tuner.state import claim_verdict

    job_id = uuid.uuid4()
    running = next_state(next_state(None, ev.JobCreated(job_id=job_id, source="test", payload=ev.JobCreatedPayload(
        spec=_spec()))), ev.JobStarted(job_id=job_id, source="test"))
    assert claim_verdict("tuner-b", "tuner-a", running, on_partition=True) == "hand over"  # b holds it now
    assert claim_verdict(None, "tuner-a", running, on_partition=True) == "hand over"  # the group rebalances
    assert claim_verdict("tuner-a", "tuner-a", running, on_partition=True) == "claim again"  # nobody backs it
    done = next_state(running, ev.JobCancelled(job_id=job_id, source="test"))
    assert claim_verdict("tuner-a", "tuner-a", done, on_partition=True) == "nothing"
    assert claim_verdict("tuner-a", "tuner-a", running, on_partition=False) == "nothing"
