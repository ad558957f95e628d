"""kill -9 of the projector mid-stream loses nothing and projects nothing twice: offsets are
committed only after the batch's database transaction."""

from __future__ import annotations

import os
import signal
import uuid

from sqlalchemy import func, select

from schemas import events as ev
from schemas import tables
from tests.support.session import TOPICS
from adapters.database import create_database, drop_database, make_engine
from schemas.job_spec import JobSpec
from tests.conftest import Process
from tests.support.specs import example_spec
from tests.support.waiting import eventually

TRIALS, STEPS = 40, 100


async def test_projector_killed_mid_stream_resumes_without_loss_or_duplicates(
    stack, service_env, producer, tmp_path
):
    name = f"crash_{uuid.uuid4().hex[:8]}"
    url = await create_database(stack.database_url, name)
    env = {**service_env, "DATABASE_URL": url, "TUNIX_PROJECTOR_GROUP": f"{name}-projector",
           "TUNIX_PROJECTOR_MAX_BATCH": "200"}
    engine = make_engine(url)
    try:
        job_id = uuid.uuid4()
        spec = JobSpec.model_validate(example_spec(name="crash"))
        sent = [ev.JobCreated(job_id=job_id, source="tests", payload=ev.JobCreatedPayload(spec=spec))]
        sent += [
            ev.TrialUpdated(job_id=job_id, source="tests", payload=ev.TrialUpdatedPayload(
                trial_id=f"t{t}", status="running", iteration=step, metrics={"score": float(step)}))
            for step in range(STEPS) for t in range(TRIALS)
        ]
        for event in sent:
            await producer.send(TOPICS.events.name, ev.serialize_event(event), key=event.key())
        await producer.flush()

        first = Process("consumers.projector", env, tmp_path)
        await eventually(lambda: _projected(engine, job_id, at_least=len(sent) // 4), 60,
                         "a quarter projected before the kill")
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=10)
        killed_at = await _count(engine, job_id)
        assert killed_at < len(sent), "the kill came too late to prove anything"

        second = Process("consumers.projector", env, tmp_path)
        try:
            await eventually(lambda: _projected(engine, job_id, at_least=len(sent)), 90, "all projected")
        finally:
            second.stop()
        assert await _count(engine, job_id) == len(sent)
        async with engine.connect() as conn:
            points = await conn.scalar(select(func.count()).select_from(tables.trial_metrics)
                                       .where(tables.trial_metrics.c.job_id == job_id))
            trials = (await conn.execute(select(tables.trials.c.iteration)
                                         .where(tables.trials.c.job_id == job_id))).scalars().all()
        assert points == TRIALS * STEPS
        assert trials == [STEPS - 1] * TRIALS
    finally:
        await engine.dispose()
        await drop_database(stack.database_url, name)


async def _count(engine, job_id) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(
            select(func.count()).select_from(tables.events).where(tables.events.c.job_id == job_id))


async def _projected(engine, job_id, at_least: int) -> bool:
    try:
        return await _count(engine, job_id) >= at_least
    except Exception:  # tables not created yet: the projector migrates when it starts
        return False


