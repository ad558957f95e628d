"""Writes a batch of events into the read model in one transaction (the projector's edge).

Load the rows the batch touches, fold the events through the pure rules in
service.read.projection, then write the changed rows back in bulk. Idempotence comes from the
events table: an event_id already recorded is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asyncpg import Connection

from consumers.projector.bulk import copy_rows, insert_rows
from consumers.records import LoggedEvent
from schemas import events as ev
from schemas import tables as t
from schemas.metrics import FENCED_EVENTS
from service.read.projection import (REGISTRY_ORDER, Row, fenced, metric_point, model_version_row, project_job,
                                     project_trial, registry_order, row_refusal)


@dataclass(frozen=True)
class Unprojectable:
    logged: LoggedEvent
    reason: str


async def apply_batch(conn: Connection, batch: list[LoggedEvent]) -> list[Unprojectable]:
    """Project `batch` (in log order) inside the caller's transaction (bulk.batch_transaction);
    return what was refused."""
    fresh = await _drop_seen(conn, batch)
    if not fresh:
        return []
    jobs = await _load_jobs(conn, {le.event.job_id for le in fresh})
    trials = await _load_trials(conn, fresh)
    changed_jobs: dict[Any, Row] = {}
    changed_trials: dict[tuple, Row] = {}
    accepted: list[LoggedEvent] = []
    points: dict[tuple, Row] = {}
    versions: dict[tuple, Row] = {}
    refused: list[Unprojectable] = []

    for logged in fresh:
        event = logged.event
        job = jobs.get(event.job_id)
        reason = row_refusal(job, event)
        if reason is not None:
            refused.append(Unprojectable(logged, reason))
            continue
        if fenced(job, event):  # from a replaced owner: on the log, not in the read model
            FENCED_EVENTS.labels(event.type).inc()
            continue
        accepted.append(logged)
        if event.type == "TrialUpdated":
            key = (event.job_id, event.payload.trial_id)
            trial = project_trial(trials.get(key), event)
            if trial is not None:  # None: the trial had finished, the event is only audited
                trials[key] = changed_trials[key] = trial
                point = metric_point(event)
                if point is not None:
                    points.setdefault((*key, point["step"]), point)
        elif isinstance(event, ev.ModelPromoted):
            row = model_version_row(event)
            key = (row["name"], row["version"])
            if key not in versions or registry_order(row) < registry_order(versions[key]):
                versions[key] = row
        new_job = project_job(job, event)
        if new_job is not job:
            jobs[event.job_id] = changed_jobs[event.job_id] = new_job

    await copy_rows(conn, t.events, [event_row(le) for le in accepted])
    await insert_rows(conn, t.jobs, list(changed_jobs.values()), "update")
    await insert_rows(conn, t.trials, list(changed_trials.values()), "update")
    await insert_rows(conn, t.trial_metrics, list(points.values()), "nothing")
    # A version claimed twice (two jobs' events) is held by the same promotion however the
    # partitions interleave (projection.REGISTRY_ORDER), so a replay rebuilds the same registry.
    await insert_rows(conn, t.model_versions, list(versions.values()), "update", lowest=REGISTRY_ORDER)
    return refused


async def _drop_seen(conn: Connection, batch: list[LoggedEvent]) -> list[LoggedEvent]:
    """The events not projected before, each once, in log order."""
    seen = {
        r[0]
        for r in await conn.fetch(
            f"SELECT event_id FROM {t.events.name} WHERE event_id = ANY($1::uuid[])",
            [le.event.event_id for le in batch],
        )
    }
    fresh = []
    for le in batch:
        if le.event.event_id not in seen:
            seen.add(le.event.event_id)
            fresh.append(le)
    return fresh


async def _load_jobs(conn: Connection, job_ids: set) -> dict[Any, Row]:
    rows = await conn.fetch(
        f"SELECT * FROM {t.jobs.name} WHERE job_id = ANY($1::uuid[])", list(job_ids)
    )
    return {r["job_id"]: dict(r) for r in rows}


async def _load_trials(conn: Connection, batch: list[LoggedEvent]) -> dict[tuple, Row]:
    keys = {
        (le.event.job_id, le.event.payload.trial_id)
        for le in batch
        if isinstance(le.event, ev.TrialUpdated)
    }
    if not keys:
        return {}
    job_ids, trial_ids = zip(*keys, strict=True)
    rows = await conn.fetch(
        f"SELECT t.* FROM {t.trials.name} t "
        "JOIN unnest($1::uuid[], $2::text[]) AS k(job_id, trial_id) USING (job_id, trial_id)",
        list(job_ids),
        list(trial_ids),
    )
    return {(r["job_id"], r["trial_id"]): dict(r) for r in rows}


def event_row(le: LoggedEvent) -> Row:
    """The events table's row for a logged event (the audit trail's copy of the log)."""
    e = le.event
    return {
        "event_id": e.event_id,
        "job_id": e.job_id,
        "type": e.type,
        "occurred_at": e.occurred_at,
        "schema_version": e.schema_version,
        "source": e.source,
        "correlation_id": e.correlation_id,
        "causation_id": e.causation_id,
        "claim": e.claim,
        "actor": e.actor,
        "reason": e.reason,
        "payload": e.payload.model_dump_json(),  # JSON text, serialised once by pydantic
        "kafka_partition": le.partition,
        "kafka_offset": le.offset,
    }
