"""`tunix-tune audit verify`: run a job's searcher again, offline, fed the results in the order
the log recorded them, and check it suggests the same configurations.

The tuner put every suggestion on the log (a DecisionMade of kind "suggestion") with the
algorithm, its seed and the results the searcher took in since the previous suggestion, in
order: [trial_id, iteration] for an intermediate result, [trial_id, null] for a trial's end.
The replay builds the same steered searcher (service/search/searchers.py) under a JobRun of its own
whose publish collects the replay's decisions, feeds it the values of the trials' TrialUpdated
events, and compares suggestion by suggestion. Parallel TPE is reproducible this way because
the log kept the order results arrived in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from ray.tune.experiment import Experiment

from producers.job_run import JobRun
from schemas.api import EventOut
from schemas.job_spec import JobSpec
from schemas.lineage import Lineage
from schemas.statuses import TRIAL_TERMINAL
from service.search.searchers import param_space, search_algorithm
from service.search.steered_search import UNBOUNDED_SAMPLES


@dataclass
class Verification:
    job_id: UUID
    algorithm: str
    seed: int | None
    suggestions: int  # on the log
    matched: int  # replayed and equal, from the first on
    difference: str | None = None  # the first one, in words; None when every suggestion matched
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.difference is None and self.suggestions > 0


class _Results:
    """The values the log recorded for each trial: its reports by iteration, and its end."""

    def __init__(self, events: Sequence[EventOut]):
        self.reports: dict[tuple[str, int], list[dict]] = {}
        self.ends: dict[str, dict] = {}
        for e in events:
            if e.type != "TrialUpdated":
                continue
            p = e.payload
            if p.get("iteration") is not None and p.get("metrics"):  # a report, or the end carrying the last one
                self.reports.setdefault((p["trial_id"], p["iteration"]), []).append(p)
            if p["status"] in TRIAL_TERMINAL and p["trial_id"] not in self.ends:
                self.ends[p["trial_id"]] = p

    def report(self, trial_id: str, iteration: int, metric: str) -> dict | None:
        for p in self.reports.get((trial_id, iteration), []):
            if metric in p["metrics"]:
                return {**p["metrics"], "training_iteration": iteration}
        return None


def verify(events: Sequence[EventOut]) -> Verification:
    created = next((e for e in events if e.type == "JobCreated"), None)
    if created is None:
        raise ValueError("the log has no JobCreated: not a job's log")
    job_id, spec = created.job_id, JobSpec.model_validate(created.payload["spec"])
    lineage = created.payload.get("lineage")
    seeds = Lineage.model_validate(lineage).seeds if lineage else []
    logged = [e.payload for e in events if e.type == "DecisionMade" and e.payload["kind"] == "suggestion"]
    seed = logged[0]["inputs"].get("seed") if logged else None
    found = Verification(job_id, spec.search_algorithm, seed, len(logged), 0)
    if not logged:
        found.difference = "the log records no suggestion (the job never ran, or ran before decisions were logged)"
        return found
    if seed is not None and spec.seed is not None and seed != spec.seed:
        found.notes.append(f"the log's seed {seed} is not the spec's seed {spec.seed}")
    # The replay asks for each suggestion when the log made one: the job's limits stay out of its way.
    unbounded = spec.model_copy(update={"seed": seed, "num_samples": UNBOUNDED_SAMPLES,
                                        "max_concurrent_trials": UNBOUNDED_SAMPLES})
    replayed: list[Any] = []
    with JobRun.open(job_id, replayed.append, unbounded) as run:
        searcher = search_algorithm(run.spec, job_id, seeds)
        searcher.set_search_properties(spec.metric_name, spec.metric_mode, param_space(spec))
        searcher.add_configurations([Experiment("replay", run=_never_runs, num_samples=UNBOUNDED_SAMPLES,
                                                config=param_space(spec))])
        found.difference = _compare(searcher, logged, replayed, _Results(events), spec.metric_name, found)
    return found


def _compare(searcher, logged: list[dict], replayed: list, results: _Results, metric: str,
             found: Verification) -> str | None:
    ids: dict[str, str] = {}  # the log's trial id -> the replay's
    for number, decision in enumerate(logged, start=1):
        for trial_id, iteration in decision["inputs"].get("fed", []):
            if trial_id not in ids:
                return f"suggestion {number}: the log feeds trial {trial_id}, which no logged suggestion made"
            if iteration is not None:
                result = results.report(trial_id, iteration, metric)
                if result is None:
                    return f"suggestion {number}: the log has no {metric} of trial {trial_id} at iteration {iteration}"
                searcher.on_trial_result(ids[trial_id], result)
                continue
            end = results.ends.get(trial_id)
            if end is None:
                return f"suggestion {number}: the log feeds the end of trial {trial_id} but never ends it"
            failed = end["status"] == "failed"
            searcher.on_trial_complete(ids[trial_id], result=None if failed else (end["metrics"] or None),
                                       error=failed)
        count = len(replayed)
        trial = searcher.next_trial()
        if trial is None or len(replayed) == count:
            return f"suggestion {number} (trial {decision['trial_id']}): the replay suggests nothing"
        ids[decision["trial_id"]] = trial.trial_id
        mine, theirs = replayed[-1].payload.inputs["config"], decision["inputs"]["config"]
        if mine != theirs:
            return (f"suggestion {number} (trial {decision['trial_id']}): the log has {_shown(theirs)}, "
                    f"the replay suggests {_shown(mine)}")
        found.matched = number
    return None


def _shown(config: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in sorted(config.items()))


def _never_runs(config):  # the replay makes Trial objects only
    return None
