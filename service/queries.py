"""Reads from the PostgreSQL read model; the gateway never writes there (the projector does).

A query about one job raises JobNotFound when the read model has no such job.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas import tables as t
from schemas.api import EventOut, JobOut, JobPage, JobSummary, MetricPoint, TrialHistory, TrialOut
from service.errors import JobNotFound


class Queries:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    async def job_status(self, job_id: UUID) -> str | None:
        async with self.engine.connect() as conn:
            return await conn.scalar(select(t.jobs.c.status).where(t.jobs.c.job_id == job_id))

    async def event_projected(self, event_id: UUID) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.scalar(select(t.events.c.event_id).where(t.events.c.event_id == event_id))
        return found is not None

    async def get_job(self, job_id: UUID) -> JobOut:
        async with self.engine.connect() as conn:
            job = (await conn.execute(select(t.jobs).where(t.jobs.c.job_id == job_id))).first()
            if job is None:
                raise JobNotFound(job_id)
            rows = await conn.execute(
                select(t.trials)
                .where(t.trials.c.job_id == job_id)
                .order_by(t.trials.c.created_at, t.trials.c.trial_id)
            )
            trials = [TrialOut.model_validate(r, from_attributes=True) for r in rows]
        best = next((tr for tr in trials if tr.trial_id == job.best_trial_id), None)
        return JobOut.model_validate({**job._mapping, "trials": trials, "best_trial": best})

    async def list_jobs(self, status: str | None, limit: int, offset: int) -> JobPage:
        where = [t.jobs.c.status == status] if status else []
        async with self.engine.connect() as conn:
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

    async def job_events(self, job_id: UUID) -> list[EventOut]:
        await self._exists(job_id)
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t.events).where(t.events.c.job_id == job_id).order_by(t.events.c.kafka_offset)
            )
            return [EventOut.model_validate(r, from_attributes=True) for r in rows]

    async def metric_history(self, job_id: UUID) -> list[TrialHistory]:
        """Each trial's reported results, by iteration (the projector's trial_metrics rows)."""
        await self._exists(job_id)
        m = t.trial_metrics.c
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(m.trial_id, m.step, m.recorded_at, m.metrics).where(m.job_id == job_id).order_by(m.trial_id, m.step)
            )
            points: dict[str, list[MetricPoint]] = {}
            for trial_id, step, recorded_at, metrics in rows:
                points.setdefault(trial_id, []).append(MetricPoint(iteration=step, occurred_at=recorded_at, metrics=metrics))
        return [TrialHistory(trial_id=trial_id, points=p) for trial_id, p in points.items()]

    async def jobs_by_owner(self) -> dict[str, list[UUID]]:
        """Running (or cancelling) jobs, by the tuner whose claim they run under."""
        j = t.jobs.c
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(j.owner, j.job_id).where(j.status.in_(("running", "cancelling")), j.owner.is_not(None))
                .order_by(j.owner, j.created_at))
            owned: dict[str, list[UUID]] = {}
            for owner, job_id in rows:
                owned.setdefault(owner, []).append(job_id)
        return owned

    async def _exists(self, job_id: UUID) -> None:
        if await self.job_status(job_id) is None:
            raise JobNotFound(job_id)
