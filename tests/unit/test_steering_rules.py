"""Steering's pure parts: the read model and the tuner fold JobAdjusted, JobExtended and
ModelPromoted; the steered searcher obeys the job's limits as they change; warm-start carries
parent parameters over with a recorded reason for each; budgets on spend stop a job."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from service.read.projection import model_version_row, project_job
from ray.tune.experiment import Experiment

from service.search.searchers import param_space
from consumers.tuner.state import next_state
from service.search.steered_search import SteeredVariants
from producers.job_run import CPU_BUDGET_SPENT, JobRun
from schemas import events as ev
from schemas.api import JobOut, TrialOut
from schemas.job_spec import JobSpec
from schemas.steering import JobAdjustment
from service.commands.warm_start import carry_over
from tests.support.specs import example_spec

JOB = uuid.uuid4()
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
SPEC = JobSpec.model_validate(example_spec(num_samples=2, max_concurrent_trials=1))


def _at(s):
    return T0 + timedelta(seconds=s)


def _log():
    created = ev.JobCreated(job_id=JOB, source="t", occurred_at=_at(0), payload=ev.JobCreatedPayload(spec=SPEC))
    started = ev.JobStarted(job_id=JOB, source="t", occurred_at=_at(1))
    adjusted = ev.JobAdjusted(job_id=JOB, source="t", occurred_at=_at(2), actor="ann", payload=ev.JobAdjustedPayload(
        changes={"max_concurrent_trials": 3, "time_budget_s": None}, previous={"max_concurrent_trials": 1}))
    done = ev.JobCompleted(job_id=JOB, source="t", occurred_at=_at(3), payload=ev.JobCompletedPayload(
        best_trial_id="t1", metric_name="score", best_metric=1.0))
    extended = ev.JobExtended(job_id=JOB, source="t", occurred_at=_at(4), payload=ev.JobExtendedPayload(
        num_samples_added=2, claim=1, spec=SPEC.model_copy(update={"num_samples": 4, "max_concurrent_trials": 3})))
    return created, started, adjusted, done, extended


def test_the_read_model_folds_adjustments_and_extensions():
    job = None
    states = []
    for event in _log():
        job = project_job(job, event)
        states.append(job)
    assert states[2]["max_concurrent_trials"] == 3 and states[2]["spec"]["max_concurrent_trials"] == 3
    assert states[3]["status"] == "completed" and states[3]["finished_at"] == _at(3)
    assert job["status"] == "running" and job["finished_at"] is None and job["num_samples"] == 4
    assert job["best_trial_id"] == "t1"  # the best so far stays until the next JobCompleted
    late = ev.JobAdjusted(job_id=JOB, source="t", payload=ev.JobAdjustedPayload(changes={"num_samples": 9}))
    assert project_job(states[3], late) is states[3]  # a finished job is not adjusted


def test_the_tuner_resumes_an_extended_job_and_only_a_completed_one():
    job = None
    for event in _log()[:3]:
        job = next_state(job, event)
    assert job.spec.max_concurrent_trials == 3 and job.spec.time_budget_s is None
    done = next_state(job, _log()[3])
    assert done.finished and done.status == "completed"
    back = next_state(done, _log()[4])  # the finished job is kept, slim, to judge an extension
    assert back.should_run and back.spec.num_samples == 4 and back.claim == done.claim  # what the read model fences by
    # What the projector dead-letters, the tuner never runs: an extension of a job it never saw
    # or of one that did not complete.
    assert next_state(None, _log()[4]) is None
    cancelled = next_state(job, ev.JobCancelled(job_id=JOB, source="t"))
    assert next_state(cancelled, _log()[4]) is cancelled and not cancelled.should_run


def test_a_model_version_row_names_who_promoted_it():
    promoted = ev.ModelPromoted(job_id=JOB, source="t", actor="ann", reason="best so far", payload=ev.ModelPromotedPayload(
        name="hcd", version=2, stage="candidate", trial_id="t1", path="/m/hcd/2", source_path="/r/t1",
        metric_name="score", metric=0.5))
    row = model_version_row(promoted)
    assert (row["name"], row["version"], row["actor"], row["reason"], row["job_id"]) == ("hcd", 2, "ann", "best so far", JOB)


def test_an_adjustment_must_change_something_and_never_nulls_a_count():
    with pytest.raises(ValueError, match="at least one"):
        JobAdjustment(reason="nothing")
    with pytest.raises(ValueError, match="num_samples\n  Input should be a valid integer"):
        JobAdjustment.model_validate({"num_samples": None})
    assert JobAdjustment(time_budget_s=None).changes() == {"time_budget_s": None}


def _variants(spec: JobSpec, tried=()):
    searcher = SteeredVariants(JOB, tuple(spec.search_space), list(tried), spec.search_algorithm, random_state=0)
    searcher.set_search_properties("score", "max", {})
    searcher.add_configurations(Experiment("exp", run=_trainable, num_samples=1_000_000, config=param_space(spec)))
    return searcher


def _trainable(config):  # never runs: the searcher only makes Trial objects
    return None


def test_the_steered_searcher_reads_concurrency_and_trial_count_at_every_step():
    with JobRun.open(JOB, lambda e: None, SPEC) as run:
        searcher = _variants(SPEC)
        first = searcher.next_trial()
        assert first is not None and searcher.next_trial() is None  # one at a time
        run.spec = run.spec.model_copy(update={"max_concurrent_trials": 2})
        second = searcher.next_trial()
        assert second is not None and searcher.next_trial() is None  # two live, and only two planned
        searcher.on_trial_complete(first.trial_id)
        assert searcher.next_trial() is None and searcher.is_finished()  # both planned trials exist
        run.spec = run.spec.model_copy(update={"num_samples": 3})
        assert not searcher.is_finished() and searcher.next_trial() is not None
        searcher.set_finished()  # Ray halts a completed search ...
        run.spec = run.spec.model_copy(update={"num_samples": 4})  # ... and an extension resumes it
        assert not searcher.is_finished()


def test_a_packed_job_has_no_more_trials_live_than_its_pack_has_slots():
    """A trial beyond the slots would only wait for one, reported running with no lease."""
    spec = SPEC.model_copy(update={"max_concurrent_trials": 4, "num_samples": 8})
    with JobRun.open(JOB, lambda e: None, spec) as run:
        run.pack_slots = 2
        searcher = _variants(spec)
        first, second = searcher.next_trial(), searcher.next_trial()
        assert first and second and searcher.next_trial() is None
        searcher.on_trial_complete(first.trial_id)  # its slot is free: the next trial takes it
        assert searcher.next_trial() is not None and searcher.next_trial() is None
        run.pack_slots = None  # unpacked: max_concurrent_trials again
        assert searcher.next_trial() is not None and searcher.next_trial() is not None
        assert searcher.next_trial() is None


def test_a_grid_search_skips_the_points_its_parents_tried():
    spec = JobSpec.model_validate(example_spec(num_samples=1, max_concurrent_trials=4, search_algorithm="grid",
                                               search_space={"learning_rate": {"type": "grid", "values": [1, 2, 3]}}))
    with JobRun.open(JOB, lambda e: None, spec):
        searcher = _variants(spec, tried=[{"learning_rate": 1}, {"learning_rate": 3}])
        made = [searcher.next_trial() for _ in range(3)]
        assert [t.config["learning_rate"] for t in made if t] == [2] and searcher.is_finished()


def _parent(space: dict, fixed: dict, trials: list[tuple[dict, float, str]]) -> JobOut:
    spec = example_spec(search_space=space, fixed_params=fixed)
    return JobOut.model_validate({
        "job_id": uuid.uuid4(), "name": "p", "status": "completed", "dataset_key": "d", "base_model_id": "m",
        "metric_name": "score", "metric_mode": "max", "num_samples": len(trials), "max_concurrent_trials": 1,
        "created_at": T0, "started_at": T0, "finished_at": T0, "best_trial_id": None, "best_metric": None, "error": None,
        "spec": spec, "best_run_id": None, "best_checkpoint_path": None, "best_trial": None,
        "trials": [TrialOut(trial_id=f"t{i}", status=status, params=params, metrics={"score": score}, iteration=1,
                            reason=None, run_id=None, artifact_path=None, created_at=T0, started_at=_at(i),
                            finished_at=_at(i + 1)) for i, (params, score, status) in enumerate(trials)]})


LR = {"type": "loguniform", "min": 1e-4, "max": 1e-2}


def test_warm_start_keeps_maps_and_drops_each_parameter_with_a_reason():
    child = JobSpec.model_validate(example_spec(search_space={"learning_rate": LR, "lora_rank": {
        "type": "choice", "values": [4, 8]}}, fixed_params={"warmup_steps": 5}))
    parent = _parent({"learning_rate": LR, "warmup_steps": {"type": "randint", "min": 0, "max": 9}}, {"lora_rank": 8}, [
        ({"learning_rate": 1e-3, "warmup_steps": 2}, 5.0, "completed"),
        ({"learning_rate": 5e-2, "warmup_steps": 3}, 9.0, "completed"),  # outside the child's range
        ({"learning_rate": 2e-3, "warmup_steps": 4}, 7.0, "failed"),
    ])
    seeds, mapping = carry_over(child, parent, at_trials=None, top_k=None)
    assert [(s.params, s.score) for s in seeds] == [({"learning_rate": 1e-3, "lora_rank": 8}, 5.0)]
    outcomes = {m.parameter: (m.outcome, m.reason) for m in mapping}
    assert outcomes["learning_rate"][0] == "kept" and "1 trial(s) outside" in outcomes["learning_rate"][1]
    assert outcomes["lora_rank"][0] == "from_fixed"
    assert outcomes["warmup_steps"][0] == "dropped" and "this job fixes it at 5" in outcomes["warmup_steps"][1]
    assert carry_over(child, parent, at_trials=0, top_k=None)[0] == []  # a fork at its start


def test_a_parent_that_never_set_a_searched_parameter_seeds_nothing():
    child = JobSpec.model_validate(example_spec(search_space={"learning_rate": LR, "weight_decay": {
        "type": "uniform", "min": 0, "max": 0.1}}))
    parent = _parent({"learning_rate": LR}, {}, [({"learning_rate": 1e-3}, 5.0, "completed")])
    seeds, mapping = carry_over(child, parent, at_trials=None, top_k=None)
    assert seeds == [] and any(m.parameter == "weight_decay" and m.outcome == "dropped" for m in mapping)


def test_a_cpu_budget_stops_the_job_once_spent():
    spec = JobSpec.model_validate(example_spec(budget={"cpu_s": 10.0}))
    with JobRun.open(JOB, lambda e: None, spec, costs={"a": (6.0, 0.0)}) as run:
        assert not run.out_of_budget(0.0)
        run.costs["b"] = (4.0, 0.0)
        assert run.out_of_budget(0.0) and run.stop_reason == CPU_BUDGET_SPENT


def test_a_renamed_parameter_is_carried_over_under_its_new_name():
    child = JobSpec.model_validate(example_spec(search_space={"learning_rate": LR}))
    parent = _parent({"lr": LR}, {}, [({"lr": 1e-3}, 5.0, "completed"), ({"lr": 2e-3}, 6.0, "completed")])
    seeds, mapping = carry_over(child, parent, at_trials=None, top_k=1, rename={"lr": "learning_rate"})
    assert [(s.params, s.score) for s in seeds] == [({"learning_rate": 2e-3}, 6.0)]  # top_k=1: the best
    assert [(m.parameter, m.outcome) for m in mapping] == [("learning_rate", "renamed")]
    assert "the parent's 'lr', renamed" in mapping[0].reason
    only_first = carry_over(child, parent, None, None, ended_by_offset={"t0"}, rename={"lr": "learning_rate"})[0]
    assert [s.trial_id for s in only_first] == ["t0"]
