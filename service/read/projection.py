"""Pure projection rules: (current row, event) -> new row. No I/O here.

Rows are plain dicts keyed like the columns of schemas.tables. Statuses only move forward:
a late or duplicated event never takes a job or trial back to an earlier status, and the
first terminal status wins, so the same log always folds into the same read model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from schemas import events as ev
from schemas.job_spec import JobSpec
from schemas.statuses import TERMINAL_JOB_STATUSES, TRIAL_TERMINAL

Row = dict[str, Any]

# A stale or preempted trial runs again when it resumes: those three share a rank.
TRIAL_STATUS_RANK = {
    "pending": 0, "running": 1, "stale": 1, "preempted": 1, "completed": 2, "failed": 2, "stopped": 2,
}


def is_terminal_job(status: str) -> bool:
    return status in TERMINAL_JOB_STATUSES


def fenced(job: Row | None, event: ev.Event) -> bool:
    """An event from a replaced owner (schemas.events.superseded): on the log, ignored here."""
    return job is not None and ev.superseded(event, job["claim"])


def refusal(status: str | None, event: ev.Event, spec: Mapping[str, Any] | JobSpec | None = None,
            claim: int | None = None) -> str | None:
    """Why `event` cannot apply to a job in `status` (None: never created) whose spec is
    `spec` and latest claim `claim`, or None. Every consumer refuses the same events: the
    projector dead-letters them, the tuner and the as-of fold skip them, so none acts on what
    the read model never shows. (Then every consumer ignores what `fenced` says, the same way.)"""
    if status is None:
        return None if isinstance(event, ev.JobCreated) else f"unknown job_id {event.job_id}"
    if isinstance(event, ev.JobClaimed) and event.payload.generation > (claim or 0) + 1:
        return (f"claim generation {event.payload.generation} skips the job's next one, {(claim or 0) + 1}: "
                "a tuner claims from the generation it read on the log")
    if isinstance(event, ev.JobExtended) and status != "completed":
        return f"job {event.job_id} is {status}; only a completed job can be extended"
    if isinstance(event, ev.JobAdjusted) and not is_terminal_job(status) and spec is not None:
        try:
            (spec if isinstance(spec, JobSpec) else JobSpec.model_validate(spec)).adjusted(event.payload.changes)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}"
                                 for e in exc.errors(include_url=False)[:5])
            return f"the adjusted spec is not valid: {problems}"
    return None


def row_refusal(job: Row | None, event: ev.Event) -> str | None:
    """`refusal` for a job as the read model has it (a row, or None)."""
    return refusal(job["status"], event, job["spec"], job["claim"]) if job is not None else refusal(None, event)


def next_status(status: str | None, event: ev.Event) -> str | None:
    """A job's status after `event` (None while it has not been created). Statuses only move
    forward; the first terminal status stays, except that a completed job may be extended."""
    if status is None:
        return "created" if isinstance(event, ev.JobCreated) else None
    if isinstance(event, ev.JobExtended):
        return "running" if status == "completed" else status
    if is_terminal_job(status):
        return status
    match event:
        case ev.JobStarted() if status == "created":
            return "running"
        case ev.JobCancelRequested():
            # A job that never started has no tuner to stop: it is cancelled at once.
            return "cancelled" if status == "created" else "cancelling"
        case ev.JobCompleted():
            return "completed"
        case ev.JobFailed():
            return "failed"
        case ev.JobCancelled():
            return "cancelled"
    return status


def project_job(job: Row | None, event: ev.Event) -> Row | None:
    """The job row after `event`; None only while the job has not been created. The caller
    has refused what `refusal` refuses. The events in _ANY_STATUS apply whatever the job's
    status (even before it exists); those in _WHILE_ACTIVE only to a created job that has not
    finished; any other event leaves the row as it is."""
    any_status = _ANY_STATUS.get(type(event))
    if any_status is not None:
        return any_status(job, event)
    if job is None or is_terminal_job(job["status"]):
        return job
    change = _WHILE_ACTIVE.get(type(event))
    return job if change is None else change(job, event)


def _unchanged(job: Row | None, event: ev.Event) -> Row | None:
    return job


def _created(job: Row | None, event: ev.JobCreated) -> Row | None:
    return job if job is not None else _new_job(event)


def _baseline(job: Row | None, event: ev.BaselineEvaluated) -> Row | None:
    return job if job is None else {**job, "baseline": event.payload.model_dump(mode="json")}


def _extended(job: Row | None, event: ev.JobExtended) -> Row | None:
    """Only a completed job is extended: it runs again as the extension describes it."""
    if job is None or job["status"] != "completed":
        return job
    return {**job, **_spec_columns(event.payload.spec), "status": "running", "finished_at": None,
            "updated_at": event.occurred_at}


def _claimed(job: Row, event: ev.JobClaimed) -> Row:
    claim = event.payload
    return {**job, "owner": claim.tuner_id, "claim": claim.generation, "updated_at": event.occurred_at}


def _adjusted(job: Row, event: ev.JobAdjusted) -> Row:
    """`refusal` checked that the adjusted spec is valid."""
    spec = JobSpec.model_validate(job["spec"]).adjusted(event.payload.changes)
    return {**job, **_spec_columns(spec), "updated_at": event.occurred_at}


def _started(job: Row, event: ev.JobStarted) -> Row:
    status, at = next_status(job["status"], event), event.occurred_at
    return job if status == job["status"] else {**job, "status": status, "started_at": at, "updated_at": at}


def _cancel_requested(job: Row, event: ev.JobCancelRequested) -> Row:
    status, at = next_status(job["status"], event), event.occurred_at
    return _finish(job, at, status) if is_terminal_job(status) else {**job, "status": status, "updated_at": at}


def _completed(job: Row, event: ev.JobCompleted) -> Row:
    p = event.payload
    return _finish(
        job,
        event.occurred_at,
        "completed",
        best_trial_id=p.best_trial_id,
        best_metric=p.best_metric,
        best_run_id=p.best_run_id,
        best_checkpoint_path=p.best_checkpoint_path,
    )


def _failed(job: Row, event: ev.JobFailed) -> Row:
    return _finish(job, event.occurred_at, "failed", error=event.payload.error)


def _cancelled(job: Row, event: ev.JobCancelled) -> Row:
    return _finish(job, event.occurred_at, "cancelled")


# Whatever the job's status, even before it exists.
_ANY_STATUS: dict[type, Callable[[Row | None, Any], Row | None]] = {
    ev.TrialUpdated: _unchanged,  # the bulk of the log; trials never change their job
    ev.JobCreated: _created,  # a second JobCreated changes nothing
    ev.BaselineEvaluated: _baseline,  # describes the base model: kept whatever the status
    ev.JobExtended: _extended,  # revives a completed job
}

# Only while the job is created and not finished (the first terminal status stays).
_WHILE_ACTIVE: dict[type, Callable[[Row, Any], Row]] = {
    ev.JobClaimed: _claimed,
    ev.JobAdjusted: _adjusted,
    ev.JobStarted: _started,
    ev.JobCancelRequested: _cancel_requested,
    ev.JobCompleted: _completed,
    ev.JobFailed: _failed,
    ev.JobCancelled: _cancelled,
}


def _spec_columns(spec: JobSpec) -> Row:
    """The job row's columns that come from its spec (as created, extended or adjusted)."""
    return {"name": spec.name, "dataset_key": spec.dataset_key, "base_model_id": spec.base_model_id,
            "metric_name": spec.metric_name, "metric_mode": spec.metric_mode, "num_samples": spec.num_samples,
            "max_concurrent_trials": spec.max_concurrent_trials, "spec": spec.model_dump(mode="json")}


def _new_job(event: ev.JobCreated) -> Row:
    return {
        "job_id": event.job_id,
        **_spec_columns(event.payload.spec),
        "status": "created",
        "created_at": event.occurred_at,
        "started_at": None,
        "finished_at": None,
        "updated_at": event.occurred_at,
        "best_trial_id": None,
        "best_metric": None,
        "best_run_id": None,
        "best_checkpoint_path": None,
        "error": None,
        "owner": None,
        "claim": None,
        "lineage": lineage_summary(event.payload.lineage),
        "baseline": None,
    }


def lineage_summary(lineage) -> dict | None:
    """The job row's lineage: everything but the seed trials themselves (those stay on the
    log, in the JobCreated), and how many there were."""
    if lineage is None:
        return None
    return {**lineage.model_dump(mode="json", exclude={"seeds"}), "seed_count": len(lineage.seeds)}


def _finish(job: Row, at, status: str, **fields: Any) -> Row:
    return {**job, **fields, "status": status, "finished_at": at, "updated_at": at}


def project_trial(trial: Row | None, event: ev.TrialUpdated) -> Row | None:
    """The trial row after `event`, or None when the event changes nothing."""
    p, at = event.payload, event.occurred_at
    if trial is None:
        trial = {
            "job_id": event.job_id,
            "trial_id": p.trial_id,
            "status": "pending",
            "params": {},
            "metrics": {},
            "iteration": None,
            "reason": None,
            "run_id": None,
            "artifact_path": None,
            "node": None,
            "cpu_s": None,
            "gpu_s": None,
            "created_at": at,
            "started_at": None,
            "finished_at": None,
            "updated_at": at,
        }
    elif trial["finished_at"] is not None or (
        TRIAL_STATUS_RANK[p.status] < TRIAL_STATUS_RANK[trial["status"]]
    ):
        return None
    new = {**trial, "status": p.status, "updated_at": at}
    if p.params:
        new["params"] = {**trial["params"], **p.params}
    if p.metrics and (
        p.iteration is None or trial["iteration"] is None or p.iteration >= trial["iteration"]
    ):
        new["metrics"] = {**trial["metrics"], **p.metrics}
        new["iteration"] = p.iteration if p.iteration is not None else trial["iteration"]
    for field in ("reason", "run_id", "artifact_path", "node", "cpu_s", "gpu_s"):
        if getattr(p, field) is not None:
            new[field] = getattr(p, field)
    if p.status != "pending" and new["started_at"] is None:
        new["started_at"] = at
    if p.status in TRIAL_TERMINAL:
        new["finished_at"] = at
    return new


def metric_point(event: ev.TrialUpdated) -> Row | None:
    """One row of a trial's metric history (step -> metrics), when the event reports one."""
    p = event.payload
    if p.iteration is None or not p.metrics:
        return None
    return {
        "job_id": event.job_id,
        "trial_id": p.trial_id,
        "step": p.iteration,
        "metrics": p.metrics,
        "recorded_at": event.occurred_at,
    }


# Which promotion holds a (name, version) that two promotions claim: the earliest, then the lowest
# event id. Two jobs' events sit on different partitions, whose interleaving a live projector and a
# replay read differently: "the first one read" would not rebuild the same registry.
REGISTRY_ORDER = ("promoted_at", "event_id")


def registry_order(row: Row) -> tuple:
    return tuple(row[column] for column in REGISTRY_ORDER)


def model_version_row(event: ev.ModelPromoted) -> Row:
    """The registry's row for a promoted model version."""
    p = event.payload
    return {
        "name": p.name, "version": p.version, "stage": p.stage, "job_id": event.job_id, "trial_id": p.trial_id,
        "path": p.path, "source_path": p.source_path, "metric_name": p.metric_name, "metric": p.metric,
        "params": p.params, "promoted_at": event.occurred_at, "actor": event.actor, "reason": event.reason,
        "event_id": event.event_id,
    }
