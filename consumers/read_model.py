"""Writes a batch of events into the read model in one transaction (the projector's edge).

Load the rows the batch touches, fold the events through the pure rules in
consumers.projection, then write the changed rows back in bulk. Idempotence comes from the
events table: an event_id already recorded is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from consumers.projection import Row, metric_point, project_job, project_trial
from schemas import events as ev
from schemas import tables as t


@dataclass(frozen=True)
class LoggedEvent:
    """An event with the place it holds in the Kafka log."""

    event: ev.Event
    partition: int
    offset: int


@dataclass(frozen=True)
class Unprojectable:
    logged: LoggedEvent
    reason: str


async def apply_batch(conn: AsyncConnection, batch: list[LoggedEvent]) -> list[Unprojectable]:
    """Project `batch` (in log order) inside the caller's transaction; return what was refused."""
    fresh = await _drop_seen(conn, batch)
    if not fresh:
        return []
    jobs = await _load_jobs(conn, {le.event.job_id for le in fresh})
    trials = await _load_trials(conn, fresh)
    changed_jobs: dict[Any, Row] = {}
    changed_trials: dict[tuple, Row] = {}
    accepted: list[LoggedEvent] = []
    points: dict[tuple, Row] = {}
    refused: list[Unprojectable] = []

    for logged in fresh:
        event = logged.event
        job = jobs.get(event.job_id)
        if job is None and not isinstance(event, ev.JobCreated):
            refused.append(Unprojectable(logged, f"unknown job_id {event.job_id}"))
            continue
        accepted.append(logged)
        if isinstance(event, ev.TrialUpdated):
            key = (event.job_id, event.payload.trial_id)
            trial = project_trial(trials.get(key), event)
            if trial is not None:  # None: the trial had finished, the event is only audited
                trials[key] = changed_trials[key] = trial
                point = metric_point(event)
                if point is not None:
                    points.setdefault((*key, point["step"]), point)
        new_job = project_job(job, event)
        if new_job is not job:
            jobs[event.job_id] = changed_jobs[event.job_id] = new_job

    await _insert_events(conn, accepted)
    await _upsert(conn, t.jobs, list(changed_jobs.values()), ["job_id"])
    await _upsert(conn, t.trials, list(changed_trials.values()), ["job_id", "trial_id"])
    if points:
        stmt = insert(t.trial_metrics).on_conflict_do_nothing()
        await conn.execute(stmt, list(points.values()))
    return refused


async def _drop_seen(conn: AsyncConnection, batch: list[LoggedEvent]) -> list[LoggedEvent]:
    ids = [le.event.event_id for le in batch]
    seen = set(
        (await conn.execute(select(t.events.c.event_id).where(t.events.c.event_id.in_(ids))))
        .scalars()
        .all()
    )
    fresh = []
    for le in batch:
        if le.event.event_id not in seen:
            seen.add(le.event.event_id)
            fresh.append(le)
    return fresh


async def _load_jobs(conn: AsyncConnection, job_ids: set) -> dict[Any, Row]:
    rows = await conn.execute(select(t.jobs).where(t.jobs.c.job_id.in_(job_ids)))
    return {r.job_id: dict(r._mapping) for r in rows}


async def _load_trials(conn: AsyncConnection, batch: list[LoggedEvent]) -> dict[tuple, Row]:
    keys = {
        (le.event.job_id, le.event.payload.trial_id)
        for le in batch
        if isinstance(le.event, ev.TrialUpdated)
    }
    if not keys:
        return {}
    rows = await conn.execute(
        select(t.trials).where(tuple_(t.trials.c.job_id, t.trials.c.trial_id).in_(keys))
    )
    return {(r.job_id, r.trial_id): dict(r._mapping) for r in rows}


async def _insert_events(conn: AsyncConnection, accepted: list[LoggedEvent]) -> None:
    if not accepted:
        return
    rows = [
        {
            "event_id": le.event.event_id,
            "job_id": le.event.job_id,
            "type": le.event.type,
            "occurred_at": le.event.occurred_at,
            "schema_version": le.event.schema_version,
            "source": le.event.source,
            "correlation_id": le.event.correlation_id,
            "causation_id": le.event.causation_id,
            "payload": le.event.payload.model_dump(mode="json"),
            "kafka_partition": le.partition,
            "kafka_offset": le.offset,
        }
        for le in accepted
    ]
    await conn.execute(insert(t.events), rows)


async def _upsert(conn: AsyncConnection, table, rows: list[Row], keys: list[str]) -> None:
    if not rows:
        return
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys},
    )
    await conn.execute(stmt, rows)
