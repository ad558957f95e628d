"""What a new job learns from its parents: their completed trials, carried over parameter by
parameter into its own search space, each decision recorded (schemas/lineage.py).

A parent trial seeds the searcher only with a value for every searched parameter of the new
job, each inside the new job's range; a parameter the new job does not search is ignored; one
the parent fixed is taken from its fixed value; one the parent called otherwise is renamed
(`warm_start.rename`). Every parameter's outcome, and the trials it
cost, goes into the JobCreated, so nothing is dropped silently.
"""

from __future__ import annotations

import math
from typing import Literal
from uuid import UUID

from schemas import search_space as ss
from schemas.api import JobOut, TrialOut
from schemas.job_spec import JobSpec
from schemas.lineage import Lineage, ParameterMapping, SeedTrial
from schemas.statuses import TRIAL_TERMINAL
from service.errors import JobNotFound, Problem

# Seeds travel in the JobCreated event: this many keep it well inside Kafka's 1 MB message.
MAX_SEEDS = 4000


def inside(param: ss.ParamSpec, value) -> bool:
    """Whether `value` is one the new job's parameter could have drawn."""
    if isinstance(param, (ss.Choice, ss.Grid)):
        return value in param.values
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return False
    if isinstance(param, ss.RandInt):
        return float(value).is_integer() and param.min <= value < param.max
    if isinstance(param, ss.Normal):
        return True
    return param.min <= value <= param.max


def ended_in_order(parent: JobOut) -> list[TrialOut]:
    return sorted((t for t in parent.trials if t.finished_at is not None), key=lambda t: (t.finished_at, t.trial_id))


def _renamed(parent: JobOut, rename: dict[str, str]) -> tuple[JobSpec, list[TrialOut]]:
    """The parent's spec and trials in this job's parameter names."""
    spec = JobSpec.model_validate(parent.spec)
    if not rename:
        return spec, parent.trials
    spec = spec.model_copy(update={
        "search_space": {rename.get(n, n): p for n, p in spec.search_space.items()},
        "fixed_params": {rename.get(n, n): v for n, v in spec.fixed_params.items()}})
    trials = [t.model_copy(update={"params": {rename.get(n, n): v for n, v in t.params.items()}}) for t in parent.trials]
    return spec, trials


def carry_over(spec: JobSpec, parent: JobOut, at_trials: int | None, top_k: int | None,
               ended_by_offset: set[str] | None = None, rename: dict[str, str] | None = None
               ) -> tuple[list[SeedTrial], list[ParameterMapping]]:
    """The seeds one parent gives `spec`, and how each parameter was carried over.
    `ended_by_offset`: only these trials (those ended by a fork's log offset)."""
    rename = rename or {}
    parent_spec, parent_trials = _renamed(parent, rename)
    original = {new: old for old, new in rename.items()}
    metric = spec.metric_name
    ended = ended_in_order(parent.model_copy(update={"trials": parent_trials}))
    if ended_by_offset is not None:
        ended = [t for t in ended if t.trial_id in ended_by_offset]
    ended = ended[:at_trials] if at_trials is not None else ended
    scored = [t for t in ended if t.status == "completed" and math.isfinite(t.metrics.get(metric, math.nan))]
    if top_k is not None:
        scored = sorted(scored, key=lambda t: t.metrics[metric], reverse=spec.metric_mode == "max")[:top_k]
    mapping, usable = [], list(scored)

    def record(name: str, outcome: Literal["kept", "renamed", "from_fixed", "dropped"], reason: str) -> None:
        mapping.append(ParameterMapping(job_id=parent.job_id, parameter=name, outcome=outcome, reason=reason))

    for name, param in spec.search_space.items():
        if name in parent_spec.search_space:
            fits = [t for t in usable if inside(param, t.params.get(name))]
            lost = len(usable) - len(fits)
            usable = fits
            was = f"the parent's {original[name]!r}, renamed; " if name in original else ""
            record(name, ("renamed" if was else "kept") if fits or not lost else "dropped",
                   f"{was}searched by both jobs; {lost} trial(s) outside this job's range dropped" if lost
                   else f"{was}searched by both jobs; every value inside this job's range")
        elif name in parent_spec.fixed_params:
            value = parent_spec.fixed_params[name]
            if inside(param, value):
                usable = [t.model_copy(update={"params": {**t.params, name: value}}) for t in usable]
                record(name, "from_fixed", f"the parent fixed it at {value!r}: every trial gets that value")
            else:
                usable = []
                record(name, "dropped", f"the parent fixed it at {value!r}, outside this job's range: "
                                        "no trial of the parent can seed")
        else:
            usable = []
            record(name, "dropped", "the parent never set it: no trial of the parent can seed")
    for name in parent_spec.search_space.keys() - spec.search_space.keys():
        fixed = f"; this job fixes it at {spec.fixed_params[name]!r}" if name in spec.fixed_params else ""
        record(name, "dropped", f"not searched by this job: its values are ignored{fixed}")
    seeds = [SeedTrial(job_id=parent.job_id, trial_id=t.trial_id, score=t.metrics[metric],
                       params={name: t.params[name] for name in spec.search_space}) for t in usable]
    return seeds, mapping


async def warm_start_lineage(spec: JobSpec, read_model, relation: Literal["warm_start", "fork"] = "warm_start"
                             ) -> tuple[Lineage | None, list[Problem]]:
    """The lineage of `spec`'s warm start from the read model, or the problems that refuse it."""
    request = spec.warm_start
    seeds, mapping, problems = [], [], []
    for i, parent_id in enumerate(request.jobs):
        field = f"warm_start.jobs.{i}"
        try:
            parent = await read_model.get_job(parent_id)
        except JobNotFound:
            problems.append(Problem(field, f"no tuning job {parent_id}"))
            continue
        if (parent.metric_name, parent.metric_mode) != (spec.metric_name, spec.metric_mode):
            problems.append(Problem(field, f"the parent optimises {parent.metric_name} ({parent.metric_mode}), this "
                                           f"job {spec.metric_name} ({spec.metric_mode}): its scores cannot seed"))
            continue
        ended_by_offset = None
        if request.at_offset is not None:
            ended_by_offset = {e.payload["trial_id"] for e in await read_model.job_events(parent_id)
                               if e.type == "TrialUpdated" and e.kafka_offset <= request.at_offset
                               and e.payload.get("status") in TRIAL_TERMINAL}
        more_seeds, more_mapping = carry_over(spec, parent, request.at_trials, request.top_k, ended_by_offset,
                                              request.rename)
        seeds += more_seeds
        mapping += more_mapping
    if len(set(request.jobs)) != len(request.jobs):
        problems.append(Problem("warm_start.jobs", "names a parent job twice"))
    if len(seeds) > MAX_SEEDS:
        problems.append(Problem("warm_start", f"{len(seeds)} parent trials would seed the searcher; at most "
                                              f"{MAX_SEEDS} travel in one event (set top_k)"))
    if problems:
        return None, problems
    parents: list[UUID] = list(request.jobs)
    return Lineage(relation=relation, parents=parents, at_trials=request.at_trials, at_offset=request.at_offset,
                   seeds=seeds, mapping=mapping), []
