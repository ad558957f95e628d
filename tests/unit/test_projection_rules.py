"""The pure projection rules, without Kafka or a database."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from service.read.projection import metric_point, project_job, project_trial
from schemas import events as ev
from schemas.job_spec import JobSpec
from tests.support.specs import example_spec

JOB = uuid.uuid4()
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _at(s):
    return T0 + timedelta(seconds=s)


def _created():
    spec = JobSpec.model_validate(example_spec())
    return ev.JobCreated(job_id=JOB, source="t", occurred_at=_at(0), payload=ev.JobCreatedPayload(spec=spec))


def _fold_job(*events):
    job = None
    for e in events:
        job = project_job(job, e)
    return job


def _trial(status, t, iteration=None, **metrics):
    return ev.TrialUpdated(job_id=JOB, source="t", occurred_at=_at(t), payload=ev.TrialUpdatedPayload(
        trial_id="t1", status=status, metrics=metrics, iteration=iteration))


def test_job_moves_forward_only():
    started = ev.JobStarted(job_id=JOB, source="t", occurred_at=_at(1))
    done = ev.JobCompleted(job_id=JOB, source="t", occurred_at=_at(2), payload=ev.JobCompletedPayload(
        best_trial_id="t1", metric_name="score", best_metric=1.0))
    failed = ev.JobFailed(job_id=JOB, source="t", occurred_at=_at(3), payload=ev.JobFailedPayload(error="x"))
    job = _fold_job(_created(), started, done, failed, started)
    assert job["status"] == "completed" and job["error"] is None
    assert job["started_at"] == _at(1) and job["finished_at"] == _at(2)
    assert job["best_trial_id"] == "t1"


def test_events_before_job_created_leave_no_job():
    assert project_job(None, ev.JobStarted(job_id=JOB, source="t")) is None


def test_second_job_created_does_not_reset_the_job():
    job = _fold_job(_created(), ev.JobStarted(job_id=JOB, source="t", occurred_at=_at(1)), _created())
    assert job["status"] == "running"


def test_cancel_request_cancels_a_created_job_and_marks_a_running_one():
    cancel = ev.JobCancelRequested(job_id=JOB, source="t", occurred_at=_at(5))
    assert _fold_job(_created(), cancel)["status"] == "cancelled"
    running = _fold_job(_created(), ev.JobStarted(job_id=JOB, source="t", occurred_at=_at(1)), cancel)
    assert running["status"] == "cancelling" and running["finished_at"] is None
    assert project_job(running, ev.JobCancelled(job_id=JOB, source="t", occurred_at=_at(6)))["status"] == "cancelled"


def test_trial_keeps_newest_metrics_and_ignores_late_status():
    trial = project_trial(None, _trial("running", 1, iteration=5, score=50.0))
    trial = project_trial(trial, _trial("running", 2, iteration=3, score=30.0))  # older step
    assert trial["metrics"] == {"score": 50.0} and trial["iteration"] == 5
    trial = project_trial(trial, _trial("completed", 3, iteration=8, score=80.0))
    assert trial["status"] == "completed" and trial["finished_at"] == _at(3)
    assert project_trial(trial, _trial("running", 4, iteration=9, score=1.0)) is None
    assert project_trial(trial, _trial("failed", 4)) is None


def test_metric_point_needs_a_step_and_metrics():
    assert metric_point(_trial("running", 1)) is None
    assert metric_point(_trial("running", 1, score=1.0)) is None
    assert metric_point(_trial("running", 1, iteration=2, score=1.0))["step"] == 2
