"""The projector on the real broker and database: idempotence, ordering, dead letters, replay."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import orjson
from sqlalchemy import select, text

from schemas import events as ev
from schemas import tables
from schemas.topics import DLQ_ORIGIN_HEADER, DLQ_REASON_HEADER
from tests.support.session import TOPICS
from schemas.job_spec import JobSpec
from tests.support.kafka_log import read_all
from tests.support.replay_check import assert_replay_equals_live
from tests.support.specs import example_spec
from tests.support.waiting import eventually

SOURCE = "tests.other-system"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _trial(job_id, trial_id, status, t, iteration=None, **metrics) -> ev.TrialUpdated:
    return ev.TrialUpdated(
        job_id=job_id,
        source=SOURCE,
        occurred_at=_at(t),
        payload=ev.TrialUpdatedPayload(
            trial_id=trial_id,
            status=status,
            params={"learning_rate": 3e-4, "batch_size": 8},
            metrics=metrics,
            iteration=iteration,
            run_id=f"run-{trial_id}",
            artifact_path=f"artifacts/tuning/{job_id}/{trial_id}",
        ),
    )


def _created(job_id) -> ev.JobCreated:
    return ev.JobCreated(
        job_id=job_id,
        source=SOURCE,
        occurred_at=_at(0),
        payload=ev.JobCreatedPayload(spec=JobSpec.model_validate(example_spec(name="from another system"))),
    )


async def _send(producer, *events: ev.Event) -> None:
    for event in events:
        await producer.send_and_wait(TOPICS.events.name, ev.serialize_event(event), key=event.key())


async def _trial_row(db, job_id, trial_id):
    async with db.connect() as conn:
        row = (await conn.execute(select(tables.trials).where(
            tables.trials.c.job_id == job_id, tables.trials.c.trial_id == trial_id))).first()
    return dict(row._mapping) if row else None


async def _history(db, job_id, trial_id):
    async with db.connect() as conn:
        rows = await conn.execute(select(tables.trial_metrics.c.step, tables.trial_metrics.c.metrics)
                                  .where(tables.trial_metrics.c.job_id == job_id,
                                         tables.trial_metrics.c.trial_id == trial_id)
                                  .order_by(tables.trial_metrics.c.step))
        return [tuple(r) for r in rows]


async def _event_count(db, job_id):
    async with db.connect() as conn:
        return await conn.scalar(select(text("count(*)")).select_from(tables.events)
                                 .where(tables.events.c.job_id == job_id))


async def test_trial_lifecycle_from_another_system(db, producer, client):
    job_id = uuid.uuid4()
    await _send(
        producer,
        _created(job_id),
        ev.JobStarted(job_id=job_id, source=SOURCE, occurred_at=_at(1)),
        _trial(job_id, "t1", "pending", 2),
        _trial(job_id, "t1", "running", 3),
        _trial(job_id, "t1", "running", 4, iteration=10, score=40.0, eval_loss=1.2),
        _trial(job_id, "t1", "running", 5, iteration=20, score=70.0, eval_loss=0.8),
        _trial(job_id, "t1", "completed", 6, iteration=30, score=90.0, eval_loss=0.4),
        ev.JobCompleted(job_id=job_id, source=SOURCE, occurred_at=_at(7), payload=ev.JobCompletedPayload(
            best_trial_id="t1", metric_name="score", best_metric=90.0, best_run_id="run-t1")),
    )

    async def completed():
        job = (await client.get(f"/api/tuning/jobs/{job_id}")).json()
        return job.get("status") == "completed" and job
    job = await eventually(completed, 20, "job completed in the read model")
    (trial,) = job["trials"]
    assert trial["status"] == "completed" and trial["iteration"] == 30
    assert trial["metrics"] == {"score": 90.0, "eval_loss": 0.4}
    assert trial["started_at"] == "2026-01-01T00:00:03Z" and trial["finished_at"] == "2026-01-01T00:00:06Z"
    assert trial["run_id"] == "run-t1" and trial["artifact_path"].endswith(f"{job_id}/t1")
    assert job["best_trial"]["trial_id"] == "t1" and job["best_metric"] == 90.0
    assert await _history(db, job_id, "t1") == [
        (10, {"score": 40.0, "eval_loss": 1.2}),
        (20, {"score": 70.0, "eval_loss": 0.8}),
        (30, {"score": 90.0, "eval_loss": 0.4}),
    ]


async def test_duplicates_and_late_events_change_nothing(db, producer):
    job_id = uuid.uuid4()
    running = _trial(job_id, "t1", "running", 2, iteration=5, score=50.0)
    done = _trial(job_id, "t1", "completed", 3, iteration=9, score=80.0)
    original = [_created(job_id), _trial(job_id, "t1", "pending", 1), running, done]
    await _send(producer, *original)
    await eventually(lambda: _event_count(db, job_id), 20, "events projected")
    await eventually(lambda: _count_is(db, job_id, 4), 20, "4 events projected")
    before_trial = await _trial_row(db, job_id, "t1")
    before_history = await _history(db, job_id, "t1")
    assert before_trial["status"] == "completed"

    late = [
        _trial(job_id, "t1", "running", 4, iteration=7, score=10.0),  # late, earlier status
        _trial(job_id, "t1", "pending", 5),
        _trial(job_id, "t1", "failed", 6, iteration=9, score=0.0),  # a second terminal status
        _trial(job_id, "t1", "running", 7, iteration=5, score=-1.0),  # same step, other value
    ]
    # Redelivery of every original event (same event_ids), then the late ones, then a sentinel
    # on the same key: once the sentinel is projected, everything before it has been too.
    sentinel = _trial(job_id, "sentinel", "pending", 8)
    await _send(producer, *original, *late, sentinel)
    await eventually(lambda: _trial_row(db, job_id, "sentinel"), 20, "sentinel projected")

    assert await _trial_row(db, job_id, "t1") == before_trial
    assert await _history(db, job_id, "t1") == before_history
    # Duplicates are not recorded twice; late events are kept in the audit trail.
    assert await _event_count(db, job_id) == 4 + len(late) + 1


async def _count_is(db, job_id, n):
    return await _event_count(db, job_id) == n


async def test_poison_messages_go_to_dead_letter_topic_and_projection_goes_on(db, producer, stack):
    job_id = uuid.uuid4()
    unknown_job = uuid.uuid4()
    key = str(job_id).encode()
    not_json = b"\x00\x01 definitely not json"
    valid_trial = orjson.loads(ev.serialize_event(_trial(job_id, "t0", "running", 1)))
    wrong_shape = orjson.dumps({**valid_trial, "payload": {"trial_id": "t0", "status": "dancing"}})
    unknown_type = orjson.dumps({**orjson.loads(ev.serialize_event(_created(job_id))), "type": "JobExploded"})
    no_event_id = orjson.dumps({k: v for k, v in valid_trial.items() if k != "event_id"})
    orphan = ev.serialize_event(_trial(unknown_job, "t1", "running", 1))
    poison = [not_json, wrong_shape, unknown_type, no_event_id]
    for value in poison:
        await producer.send_and_wait(TOPICS.events.name, value, key=key)
    await producer.send_and_wait(TOPICS.events.name, orphan, key=str(unknown_job).encode())
    await _send(producer, _created(job_id), _trial(job_id, "after-poison", "running", 2))

    await eventually(lambda: _trial_row(db, job_id, "after-poison"), 20, "events after the poison projected")

    async def dead_letters():
        found = [r for r in await read_all(stack.kafka, TOPICS.dead_letter.name)
                 if r.value in (*poison, orphan)]
        return len(found) == 5 and found
    letters = await eventually(dead_letters, 20, "5 dead letters")
    reasons = {r.value: dict(r.headers)[DLQ_REASON_HEADER].decode() for r in letters}
    assert "JSON" in reasons[not_json] or "json" in reasons[not_json]
    assert "payload.status" in reasons[wrong_shape]
    assert "event_id is required" in reasons[no_event_id]
    assert "JobExploded" in reasons[unknown_type] or "tag" in reasons[unknown_type]
    assert f"unknown job_id {unknown_job}" == reasons[orphan]
    origins = {dict(r.headers)[DLQ_ORIGIN_HEADER].decode() for r in letters}
    assert all(o.startswith(TOPICS.events.name + "/") for o in origins)
    assert {r.key for r in letters} == {key, str(unknown_job).encode()}


async def test_replay_rebuilds_the_same_read_model(db, database_url, service_env, client, producer):
    # Some of everything: a gateway job with commands, a trial history, a completed job.
    job = (await client.post("/api/tuning/jobs", json=example_spec(name="replayed"))).json()
    await client.post(f"/api/tuning/jobs/{job['job_id']}/start")
    other = uuid.uuid4()
    await _send(producer, _created(other), _trial(other, "a", "running", 1, iteration=1, score=3.0),
                _trial(other, "a", "completed", 2, iteration=2, score=4.0))
    await eventually(lambda: _trial_row(db, other, "a"), 20, "trial projected")
    schema = await assert_replay_equals_live(service_env, db)

    replay = [sys.executable, "-m", "app.cli.main", "replay", "--schema", schema]  # into it again
    again = subprocess.run(replay,
                           env=service_env, capture_output=True, text=True, timeout=180)
    assert again.returncode != 0 and "already has events" in again.stderr
