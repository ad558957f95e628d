"""Reads from the PostgreSQL read model; the gateway never writes there (the projector does).

A query about one job raises JobNotFound when the read model has no such job. A database that
cannot be reached (refused, reset or timed-out connections) is Unavailable("postgres"), a 503;
no other OSError is, so a full or read-only disk elsewhere is never mistaken for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.publisher import Unavailable

from schemas import tables as t
from schemas.api import (
    BaselineOut,
    CompareRow,
    Cost,
    EventOut,
    JobOut,
    JobPage,
    JobSummary,
    MetricPoint,
    ModelOut,
    ModelVersionOut,
    TrialHistory,
    TrialOut,
)
from service.errors import JobNotFound, ModelNotFound
from service.read.as_of import AsOf, event_of, fold


class Queries:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection; what asyncpg raises when the server is unreachable (the socket's
        OSError, a connect timeout) is Unavailable("postgres"). Inside the block is only
        database work, so an OSError there is the database's."""
        try:
            async with self.engine.connect() as conn:
                yield conn
        except (OSError, TimeoutError) as exc:
            raise Unavailable("postgres", "cannot reach the read model") from exc

    async def job_status(self, job_id: UUID) -> str | None:
        async with self._connect() as conn:
            return await conn.scalar(select(t.jobs.c.status).where(t.jobs.c.job_id == job_id))

    async def event_projected(self, event_id: UUID) -> bool:
        async with self._connect() as conn:
            found = await conn.scalar(select(t.events.c.event_id).where(t.events.c.event_id == event_id))
        return found is not None

    async def get_job(self, job_id: UUID, as_of: AsOf | None = None) -> JobOut:
        """The job now, or as of a point of its log (service/read/as_of.py)."""
        if as_of is not None:
            return await self._job_as_of(job_id, as_of)
        # One snapshot for the job, its trials and its log position, so the answer is the fold
        # of exactly the events up to that position.
        async with self._connect() as raw:
            conn = await raw.execution_options(isolation_level="REPEATABLE READ")
            job = (await conn.execute(select(t.jobs).where(t.jobs.c.job_id == job_id))).first()
            if job is None:
                raise JobNotFound(job_id)
            trials = (await conn.execute(select(t.trials).where(t.trials.c.job_id == job_id))).mappings().all()
            position = await conn.scalar(select(func.max(t.events.c.kafka_offset)).where(t.events.c.job_id == job_id))
        # Validating every trial of a long job is CPU work: off the API's event loop.
        return await asyncio.to_thread(_job_out, job._mapping, trials, position)

    async def _job_as_of(self, job_id: UUID, as_of: AsOf) -> JobOut:
        e = t.events.c
        async with self._connect() as raw:
            conn = await raw.execution_options(isolation_level="REPEATABLE READ")
            if isinstance(as_of, int):
                position = as_of
            else:
                position = await conn.scalar(select(func.max(e.kafka_offset)).where(
                    e.job_id == job_id, e.occurred_at <= as_of))
            rows = [] if position is None else (await conn.execute(
                select(t.events).where(e.job_id == job_id, e.kafka_offset <= position).order_by(e.kafka_offset)
            )).mappings().all()
        # Parsing and folding a long log is CPU work: off the API's event loop.
        job, trials = await asyncio.to_thread(lambda: fold([event_of(row) for row in rows]))
        if job is None:
            raise JobNotFound(job_id, f"at {as_of.isoformat() if isinstance(as_of, datetime) else f'log position {as_of}'}")
        return await asyncio.to_thread(_job_out, job, list(trials.values()), rows[-1]["kafka_offset"])

    async def compare(self, job_ids: list[UUID]) -> list[CompareRow]:
        """Best score, best configuration and what each job spent, side by side: one row per
        job, in the order first named (a job named twice is read once)."""
        rows = []
        for job_id in dict.fromkeys(job_ids):
            job = await self.get_job(job_id)
            rows.append(CompareRow(
                job_id=job.job_id, name=job.name, status=job.status, metric_name=job.metric_name,
                metric_mode=job.metric_mode, trials=len(job.trials), best_metric=job.best_metric,
                best_trial_id=job.best_trial_id, best_params=job.best_trial.params if job.best_trial else {},
                cost=job.cost))
        return rows

    async def latest_version(self, name: str) -> int:
        """The highest promoted version of `name` (0 when none)."""
        async with self._connect() as conn:
            found = await conn.scalar(select(func.max(t.model_versions.c.version)).where(t.model_versions.c.name == name))
        return found or 0

    async def model_versions(self, name: str) -> list[ModelVersionOut]:
        async with self._connect() as conn:
            rows = await conn.execute(select(t.model_versions).where(t.model_versions.c.name == name)
                                      .order_by(t.model_versions.c.version.desc()))
            versions = [ModelVersionOut.model_validate(r, from_attributes=True) for r in rows]
        if not versions:
            raise ModelNotFound(name)
        return versions

    async def models(self) -> list[ModelOut]:
        """Every named model with its latest version, most recently promoted first."""
        v = t.model_versions.c
        async with self._connect() as conn:
            rows = await conn.execute(select(t.model_versions).order_by(v.name, v.version.desc()))
            by_name: dict[str, list[ModelVersionOut]] = {}
            for r in rows:
                by_name.setdefault(r.name, []).append(ModelVersionOut.model_validate(r, from_attributes=True))
        models = [ModelOut(name=name, versions=len(vs), latest=vs[0]) for name, vs in by_name.items()]
        return sorted(models, key=lambda m: m.latest.promoted_at, reverse=True)

    async def list_jobs(self, status: str | None, limit: int, offset: int) -> JobPage:
        where = [t.jobs.c.status == status] if status else []
        async with self._connect() as conn:
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
        async with self._connect() as conn:
            rows = (await conn.execute(
                select(t.events).where(t.events.c.job_id == job_id).order_by(t.events.c.kafka_offset)
            )).all()
        # A long log is many validations: off the API's event loop.
        return await asyncio.to_thread(lambda: [EventOut.model_validate(r, from_attributes=True) for r in rows])

    async def metric_history(self, job_id: UUID) -> list[TrialHistory]:
        """Each trial's reported results, by iteration (the projector's trial_metrics rows)."""
        await self._exists(job_id)
        m = t.trial_metrics.c
        async with self._connect() as conn:
            rows = (await conn.execute(
                select(m.trial_id, m.step, m.recorded_at, m.metrics).where(m.job_id == job_id).order_by(m.trial_id, m.step)
            )).all()
        return await asyncio.to_thread(_histories, rows)  # every report of every trial: off the event loop

    async def jobs_by_owner(self) -> dict[str, list[UUID]]:
        """Running (or cancelling) jobs, by the tuner whose claim they run under."""
        j = t.jobs.c
        async with self._connect() as conn:
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


def _job_out(job: Mapping, trial_rows: Iterable[Mapping], position: int | None) -> JobOut:
    baseline = _baseline_out(job.get("baseline"), job["metric_name"])
    reference = baseline.metric if baseline is not None else None
    trials = sorted((TrialOut.model_validate({**r, "gain": gain(r["metrics"].get(job["metric_name"]), reference,
                                                                  job["metric_mode"])})
                     for r in trial_rows), key=lambda tr: (tr.created_at, tr.trial_id))
    best = next((tr for tr in trials if tr.trial_id == job["best_trial_id"]), None)
    return JobOut.model_validate({**job, "trials": trials, "best_trial": best, "cost": cost_of(trials),
                                  "log_position": position, "baseline": baseline})


def _baseline_out(row: Mapping | None, metric_name: str) -> BaselineOut | None:
    return None if row is None else BaselineOut.model_validate({**row, "metric": row["metrics"].get(metric_name)})


def gain(metric: float | None, baseline: float | None, mode: str) -> float | None:
    """How much better than the baseline `metric` is: positive is better, whatever the mode."""
    if metric is None or baseline is None:
        return None
    return metric - baseline if mode == "max" else baseline - metric


def cost_of(trials: list[TrialOut]) -> Cost:
    """The job's cost ledger: its trials' reserved CPU- and GPU-seconds, and their wall time."""
    wall = sum((tr.finished_at - tr.started_at).total_seconds()
               for tr in trials if tr.started_at is not None and tr.finished_at is not None)
    return Cost(cpu_s=round(sum(tr.cpu_s or 0 for tr in trials), 3), gpu_s=round(sum(tr.gpu_s or 0 for tr in trials), 3),
                trial_s=round(wall, 3))


def _histories(rows) -> list[TrialHistory]:
    points: dict[str, list[MetricPoint]] = {}
    for trial_id, step, recorded_at, metrics in rows:
        points.setdefault(trial_id, []).append(MetricPoint(iteration=step, occurred_at=recorded_at, metrics=metrics))
    return [TrialHistory(trial_id=trial_id, points=p) for trial_id, p in points.items()]
