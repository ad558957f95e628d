"""What a new job learns from its parents: their completed trials, carried over parameter by
parameter into its own search space, each decision recorded (schemas/lineage.py).

A parent trial seeds the searcher only with a value for every searched parameter of the new
job, each inside the new job's range; a parameter the new job does not search is ignored; one
the parent fixed is taken from its fixed value; one the parent called otherwise is renamed
(`warm_start.rename`). Every parameter's outcome, and the trials it
cost, goes into the JobCreated, so nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import math
import reprlib
from collections.abc import Callable
from typing import Any, Literal

from schemas import search_space as ss
from schemas.api import JobOut, TrialOut
from schemas.job_spec import JobSpec
from schemas.lineage import Lineage, ParameterMapping, SeedTrial
from schemas.statuses import TRIAL_TERMINAL
from service.errors import JobNotFound, Problem, event_values

# Every trial of every parent is looked at once per searched parameter; past this many trials
# in all, a warm start is refused before any is carried over (the seeds themselves are bounded
# by the JobCreated's size, service/commands/commands.py).
MAX_PARENT_TRIALS = 50_000
_REPR = reprlib.Repr()  # Python 3.11's Repr takes no keyword arguments
_REPR.maxstring = _REPR.maxother = 200


def shown(value: Any) -> str:
    """A value as a reason quotes it: a repr cut to about 200 characters (a parent's fixed text
    may be 1,000 characters of escapes; the reason is bounded, schemas/lineage.py)."""
    return _REPR.repr(value)


def fits(param: ss.ParamSpec) -> Callable[[Any], bool]:
    """Whether a value is one the new job's parameter could have drawn, as a test built once per
    parameter: a choice or grid is a set, so a check costs one lookup, not a scan of its values.
    A set finds what `in list` finds (1, 1.0 and True are one member either way)."""
    if isinstance(param, (ss.Choice, ss.Grid)):
        members = frozenset(param.values)  # the spec allows only scalars: hashable

        def member(value) -> bool:
            try:
                return value in members
            except TypeError:  # an unhashable value in a trial another writer logged
                return False
        return member
    return lambda value: inside(param, value)


def inside(param: ss.ParamSpec, value) -> bool:
    """Whether `value` is one the new job's parameter could have drawn."""
    if isinstance(param, (ss.Choice, ss.Grid)):
        return fits(param)(value)
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
            test = fits(param)
            kept = [t for t in usable if test(t.params.get(name))]
            lost = len(usable) - len(kept)
            usable = kept
            was = f"the parent's {shown(original[name])}, renamed; " if name in original else ""
            record(name, ("renamed" if was else "kept") if kept or not lost else "dropped",
                   f"{was}searched by both jobs; {lost} trial(s) outside this job's range dropped" if lost
                   else f"{was}searched by both jobs; every value inside this job's range")
        elif name in parent_spec.fixed_params:
            value = parent_spec.fixed_params[name]
            if inside(param, value):
                usable = [t.model_copy(update={"params": {**t.params, name: value}}) for t in usable]
                record(name, "from_fixed", f"the parent fixed it at {shown(value)}: every trial gets that value")
            else:
                usable = []
                record(name, "dropped", f"the parent fixed it at {shown(value)}, outside this job's range: "
                                        "no trial of the parent can seed")
        else:
            usable = []
            record(name, "dropped", "the parent never set it: no trial of the parent can seed")
    for name in parent_spec.search_space.keys() - spec.search_space.keys():
        fixed = f"; this job fixes it at {shown(spec.fixed_params[name])}" if name in spec.fixed_params else ""
        record(name, "dropped", f"not searched by this job: its values are ignored{fixed}")
    seeds = [SeedTrial(job_id=parent.job_id, trial_id=t.trial_id, score=t.metrics[metric],
                       params={name: t.params[name] for name in spec.search_space}) for t in usable]
    return seeds, mapping


async def warm_start_lineage(spec: JobSpec, read_model, relation: Literal["warm_start", "fork"] = "warm_start"
                             ) -> tuple[Lineage | None, list[Problem]]:
    """The lineage of `spec`'s warm start from the read model, or the problems that refuse it.
    Every cheap refusal comes before a parent is read; carrying over is CPU work in proportion
    to the parents' trials (bounded by MAX_PARENT_TRIALS), so it runs off the event loop."""
    request = spec.warm_start
    if len(set(request.jobs)) != len(request.jobs):
        return None, [Problem("warm_start.jobs", "names a parent job twice")]
    parents, problems, examined = [], [], 0
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
        examined += len(parent.trials)
        if examined > MAX_PARENT_TRIALS:
            problems.append(Problem("warm_start.jobs", f"the parents up to {field} hold {examined} trials; a warm start "
                                                       f"looks at most {MAX_PARENT_TRIALS}: name fewer parents"))
            break
        ended_by_offset = None
        if request.at_offset is not None:
            ended_by_offset = {e.payload["trial_id"] for e in await read_model.job_events(parent_id)
                               if e.type == "TrialUpdated" and e.kafka_offset <= request.at_offset
                               and e.payload.get("status") in TRIAL_TERMINAL}
        parents.append((parent, ended_by_offset))
    if problems:
        return None, problems
    with event_values("warm_start"):
        return await asyncio.to_thread(_lineage, spec, parents, relation), []


def _lineage(spec: JobSpec, parents: list[tuple[JobOut, set[str] | None]], relation) -> Lineage:
    request = spec.warm_start
    seeds, mapping = [], []
    for parent, ended_by_offset in parents:
        more_seeds, more_mapping = carry_over(spec, parent, request.at_trials, request.top_k, ended_by_offset,
                                              request.rename)
        seeds += more_seeds
        mapping += more_mapping
    return Lineage(relation=relation, parents=[p.job_id for p, _ in parents], at_trials=request.at_trials,
                   at_offset=request.at_offset, seeds=seeds, mapping=mapping)
