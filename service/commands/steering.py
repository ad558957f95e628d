"""Commands that steer a job after it was created: adjust it while it runs, extend it once it
completed, fork it into a new job seeded with its trials. Each checks its rules against the
read model and publishes one event (service/commands/commands.py); promotion is in promotion.py."""

from __future__ import annotations

from uuid import UUID

from pydantic import ValidationError

from schemas import events as ev
from schemas.job_spec import MAX_NUM_SAMPLES, MAX_PLANNED_TRIALS, JobSpec, WarmStart
from schemas.steering import Extension, Fork, JobAdjustment
from service.commands.commands import SOURCE, Gateway, Published, Sender, create_job, publish
from service.errors import InvalidJob, JobConflict, Problem, event_values

ADJUSTABLE = ("created", "running")


async def adjust_job(job_id: UUID, adjustment: JobAdjustment, gw: Gateway, by: Sender) -> Published:
    job = await gw.read_model.get_job(job_id)
    if job.status not in ADJUSTABLE:
        raise JobConflict(f"job {job_id} is {job.status}; only a created or running job can be adjusted")
    changes = adjustment.changes()
    spec = _stored_spec(job)
    adjusted = _revalidated(spec, changes)  # the planned-trial cap among every rule; O(spec), not O(trials)
    problems = []
    if "num_samples" in changes and adjusted.planned_trials() < len(job.trials):
        per_sample = spec.grid_points().count
        least = -(-len(job.trials) // per_sample)
        problems.append(Problem("num_samples", f"must be at least {least}: the job has already started "
                                               f"{len(job.trials)} trial(s)"
                                               + (f" ({per_sample} grid points per sample)" if per_sample > 1 else "")))
    if problems:
        raise InvalidJob(problems)
    previous = {name: getattr(spec, name) for name in changes}
    with event_values():
        payload = ev.JobAdjustedPayload(changes=changes, previous=previous)
    return await publish(gw, ev.JobAdjusted(job_id=job_id, source=SOURCE, payload=payload), by)


async def extend_job(job_id: UUID, extension: Extension, gw: Gateway, by: Sender) -> Published:
    job = await gw.read_model.get_job(job_id)
    if job.status != "completed":
        raise JobConflict(f"job {job_id} is {job.status}; only a completed job can be extended")
    spec = _stored_spec(job)
    total = spec.num_samples + extension.num_samples
    if total > MAX_NUM_SAMPLES:
        raise InvalidJob([Problem("num_samples", f"the job would have {total} samples; a job has at most "
                                                 f"{MAX_NUM_SAMPLES}")])
    points = spec.grid_points().count
    if total * points > MAX_PLANNED_TRIALS:
        room = max(0, MAX_PLANNED_TRIALS // points - spec.num_samples)
        raise InvalidJob([Problem("num_samples", f"may add at most {room}: the job has {spec.num_samples} sample(s) x "
                                                 f"{points} grid points and a job plans at most {MAX_PLANNED_TRIALS} "
                                                 "trials (num_samples x grid points)")])
    with event_values():
        payload = ev.JobExtendedPayload(num_samples_added=extension.num_samples, claim=job.claim,
                                        spec=_revalidated(spec, {"num_samples": total}))
    return await publish(gw, ev.JobExtended(job_id=job_id, source=SOURCE, payload=payload), by)


def _stored_spec(job) -> JobSpec:
    """The job's spec as the read model has it; one projected before a rule it breaks (the
    planned-trial cap came later) is a conflict to explain, not a 500."""
    try:
        return JobSpec.model_validate(job.spec)
    except ValidationError as exc:
        broken = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise JobConflict(f"job {job.job_id}'s spec breaks the current rules ({broken}): fork it with changes "
                          "that fix them instead") from None


def _revalidated(spec: JobSpec, changes: dict) -> JobSpec:
    """`spec` with `changes`, every rule of a spec checked again (a model_copy checks none): an
    adjusted or extended job stays within what a created one may plan."""
    try:
        return spec.adjusted(changes)
    except ValidationError as exc:
        raise InvalidJob([Problem(".".join(map(str, e["loc"])) or "body", e["msg"].removeprefix("Value error, "))
                          for e in exc.errors()]) from None


async def fork_job(parent_id: UUID, fork: Fork, gw: Gateway, by: Sender) -> Published:
    """A new job: the parent's spec with `fork.changes`, its searcher seeded with the parent's
    trials up to the fork point (`at_trials` ended trials, or its log up to `at_offset`)."""
    parent = await gw.read_model.get_job(parent_id)
    base = {**parent.spec, "name": f"{parent.name} (fork)"[:200], **fork.changes}
    base["warm_start"] = WarmStart(jobs=[parent_id], at_trials=fork.at_trials,
                                   at_offset=fork.at_offset).model_dump(mode="json")
    try:
        spec = JobSpec.model_validate(base)
    except ValidationError as exc:
        raise InvalidJob([Problem(".".join(["changes", *map(str, e["loc"])]), e["msg"]) for e in exc.errors()]) from None
    return await create_job(spec, gw, by, relation="fork")
