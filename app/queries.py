"""Reads from the PostgreSQL read model; the gateway never writes there (the projector does)."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas import tables as t
from schemas.api import EventOut, JobOut, JobPage, JobSummary, MetricPoint, TrialHistory, TrialOut


async def job_status(engine: AsyncEngine, job_id: UUID) -> str | None:
    async with engine.connect() as conn:
        return await conn.scalar(select(t.jobs.c.status).where(t.jobs.c.job_id == job_id))


async def event_projected(engine: AsyncEngine, event_id: UUID) -> bool:
    async with engine.connect() as conn:
        found = await conn.scalar(select(t.events.c.event_id).where(t.events.c.event_id == event_id))
    return found is not None


async def get_job(engine: AsyncEngine, job_id: UUID) -> JobOut | None:
    async with engine.connect() as conn:
        job = (await conn.execute(select(t.jobs).where(t.jobs.c.job_id == job_id))).first()
        if job is None:
            return None
        rows = await conn.execute(
            select(t.trials)
            .where(t.trials.c.job_id == job_id)
            .order_by(t.trials.c.created_at, t.trials.c.trial_id)
        )
        trials = [TrialOut.model_validate(r, from_attributes=True) for r in rows]
    best = next((tr for tr in trials if tr.trial_id == job.best_trial_id), None)
    return JobOut.model_validate(
        {**job._mapping, "trials": trials, "best_trial": best}
    )


async def list_jobs(
    engine: AsyncEngine, status: str | None, limit: int, offset: int
) -> JobPage:
    where = [t.jobs.c.status == status] if status else []
    async with engine.connect() as conn:
        total = await conn.scalar(select(func.count()).select_from(t.jobs).where(*where))
        rows = await conn.execute(
            select(t.jobs)
            .where(*where)
            .order_by(t.jobs.c.created_at.desc(), t.jobs.c.job_id)
            .limit(limit)
            .offset(offset)
        )
        items = [JobSummary.model_validate(r, from_attributes=True) for r in rows]
    return JobPage(items=items, total=total, limit=limit, offset=offset)


async def job_events(engine: AsyncEngine, job_id: UUID) -> list[EventOut]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(t.events)
            .where(t.events.c.job_id == job_id)
            .order_by(t.events.c.kafka_offset)
        )
        return [EventOut.model_validate(r, from_attributes=True) for r in rows]


async def metric_history(engine: AsyncEngine, job_id: UUID) -> list[TrialHistory]:
    """Each trial's reported results, by iteration (the projector's trial_metrics rows)."""
    m = t.trial_metrics.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(m.trial_id, m.step, m.recorded_at, m.metrics).where(m.job_id == job_id).order_by(m.trial_id, m.step)
        )
        points: dict[str, list[MetricPoint]] = {}
        for trial_id, step, recorded_at, metrics in rows:
            points.setdefault(trial_id, []).append(MetricPoint(iteration=step, occurred_at=recorded_at, metrics=metrics))
    return [TrialHistory(trial_id=trial_id, points=p) for trial_id, p in points.items()]
