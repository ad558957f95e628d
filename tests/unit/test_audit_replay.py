"""The audit's pure parts: a searcher replayed over the order the log recorded verifies a
parallel TPE job and names the first suggestion an altered result changes; a job folds to the
same rows at any log position; `why` explains a trial's end from its decisions."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta, timezone

from ray.tune.experiment import Experiment

from producers.job_run import JobRun
from schemas import events as ev
from schemas.api import EventOut
from schemas.job_spec import JobSpec
from service.audit.verify import verify
from service.search.searchers import param_space, search_algorithm
from service.search.steered_search import UNBOUNDED_SAMPLES
from tests.support.specs import example_spec

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
SPACE = {"learning_rate": {"type": "loguniform", "min": 1e-4, "max": 1e-1},
         "batch_size": {"type": "choice", "values": [8, 16, 32]}}


def _row(event: ev.Event, offset: int) -> EventOut:
    return EventOut.model_validate({**event.model_dump(mode="json"), "kafka_partition": 0, "kafka_offset": offset})


def _score(config: dict) -> float:
    return -abs(math.log10(config["learning_rate"]) + 2) - config["batch_size"] / 100


def _record_parallel_tpe(num_samples: int = 8, concurrency: int = 2, algorithm: str = "tpe") -> list[EventOut]:
    """A job run the way Ray drives the steered searcher: two trials at once, each ending in turn
    (the older first), a new suggestion whenever a slot frees up. The job id fixes the searcher's
    seed: with a random one, an altered result now and then changes no later suggestion."""
    job_id = uuid.UUID("7a1b0c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d")
    tpe = {"startup_trials": 2} if algorithm == "tpe" else {}
    spec = JobSpec.model_validate(example_spec(num_samples=num_samples, max_concurrent_trials=concurrency,
                                               search_algorithm=algorithm, search_space=SPACE, **tpe))
    log: list[ev.Event] = [ev.JobCreated(job_id=job_id, source="t", payload=ev.JobCreatedPayload(spec=spec))]
    with JobRun.open(job_id, log.append, spec) as run:
        searcher = search_algorithm(spec, job_id)
        searcher.set_search_properties(spec.metric_name, spec.metric_mode, param_space(spec))
        searcher.add_configurations([Experiment("job", run=lambda c: None, num_samples=UNBOUNDED_SAMPLES,
                                                config=param_space(spec))])
        live = []
        while True:
            while (trial := searcher.next_trial()) is not None:
                live.append(trial)
            if not live:
                break
            trial = live.pop(0)
            metrics = {"score": _score(trial.config)}
            log.append(ev.TrialUpdated(job_id=job_id, source="t", payload=ev.TrialUpdatedPayload(
                trial_id=trial.trial_id, status="completed", metrics=metrics, iteration=1,
                params={k: trial.config[k] for k in SPACE})))
            searcher.on_trial_complete(trial.trial_id, result=metrics)
        assert run.spec.num_samples == num_samples
    return [_row(event.model_copy(update={"occurred_at": T0 + timedelta(seconds=i)}), i)
            for i, event in enumerate(log)]


def test_a_parallel_tpe_job_replays_to_the_same_suggestions():
    log = _record_parallel_tpe()
    found = verify(log)
    assert found.ok and found.matched == found.suggestions == 8, found
    assert found.algorithm == "tpe" and found.seed is not None


def test_an_altered_result_is_named_at_the_first_suggestion_it_changes():
    log = _record_parallel_tpe()
    suggestions = [e.payload for e in log if e.type == "DecisionMade"]
    fed = [trial_id for s in suggestions for trial_id, _ in s["inputs"]["fed"]]
    ends = {e.payload["trial_id"]: e for e in log if e.type == "TrialUpdated"}
    first, second = (ends[trial_id].payload["metrics"]["score"] for trial_id in fed[:2])
    # The first result fed swaps places with the second: TPE's good and bad groups change.
    scores = [e.payload["metrics"]["score"] for e in ends.values()]
    altered_value = min(scores) - 10 if first > second else max(scores) + 10
    first = ends[fed[0]]
    altered = [e.model_copy(update={"payload": {**e.payload, "metrics": {"score": altered_value}}}) if e is first else e
               for e in log]
    found = verify(altered)
    assert not found.ok and found.difference.startswith(f"suggestion {found.matched + 1} "), found
    assert "the log has" in found.difference and "the replay suggests" in found.difference
    # TPE samples at random until startup_trials have ended: those suggestions still match.
    assert found.matched >= 2


def test_a_random_search_replays_from_its_seed():
    found = verify(_record_parallel_tpe(num_samples=5, algorithm="random"))
    assert found.ok and found.algorithm == "random" and found.matched == 5, found


def test_a_log_without_suggestions_cannot_be_verified():
    log = _record_parallel_tpe(num_samples=2)
    found = verify([e for e in log if e.type != "DecisionMade"])
    assert not found.ok and "no suggestion" in found.difference


def _job_out(trials: dict[str, tuple[float, float]], metric="eval_loss", mode="min", best=None):
    """A finished FIFO job whose trials ran from start to end seconds after T0."""
    from schemas.api import JobOut, TrialOut
    return JobOut.model_validate({
        "job_id": uuid.uuid4(), "name": "fifo", "status": "completed", "dataset_key": "d", "base_model_id": "m",
        "metric_name": metric, "metric_mode": mode, "num_samples": len(trials), "max_concurrent_trials": 2,
        "created_at": T0, "started_at": T0, "finished_at": T0, "best_trial_id": best, "best_metric": None,
        "error": None, "spec": {}, "best_run_id": None, "best_checkpoint_path": None, "best_trial": None,
        "trials": [TrialOut(trial_id=tid, status="completed", params={}, metrics={}, iteration=4, reason=None,
                            run_id=None, artifact_path=None, created_at=T0, started_at=T0 + timedelta(seconds=a),
                            finished_at=T0 + timedelta(seconds=b)) for tid, (a, b) in trials.items()]})


def _curves(curves: dict[str, tuple[float, list[float]]]):
    """Each trial's eval_loss at iterations 1.., one report every 10 s from its start."""
    from schemas.api import MetricPoint, TrialHistory
    return [TrialHistory(trial_id=tid, points=[
        MetricPoint(iteration=i, occurred_at=T0 + timedelta(seconds=start + 10 * i), metrics={"eval_loss": v})
        for i, v in enumerate(values, start=1)]) for tid, (start, values) in curves.items()]


def test_what_if_asha_stops_the_trials_behind_at_a_rung_and_counts_the_seconds_after():
    from service.audit.what_if import AshaOptions, what_if_asha
    # a leads; b is worse than a at iteration 1; c is better than both at 1 but worse than a and b at 2.
    job = _job_out({"a": (0, 40), "b": (5, 45), "c": (50, 90)}, best="a")
    history = _curves({"a": (0, [2.0, 1.5, 1.2, 1.0]), "b": (5, [3.0, 2.5, 2.0, 1.8]),
                       "c": (50, [1.9, 1.9, 1.8, 1.7])})
    found = what_if_asha(job, history, AshaOptions(grace_period=1, reduction_factor=2))
    assert found.metric == "eval_loss" and found.options.max_t == 4 and found.trial_s == 40 + 40 + 40
    stops = {s.trial_id: s for s in found.stopped}
    assert set(stops) == {"b", "c"}, found.stopped
    # b's first report (at 15 s) is worse than a's 2.0: stopped at rung 1, its last 30 s saved.
    assert (stops["b"].iteration, stops["b"].rung, stops["b"].cutoff, stops["b"].seconds_saved) == (1, 1, 2.0, 30)
    # c passes rung 1 (1.9 against the median 2.5 of a's and b's), then at rung 2 only a (b stopped at rung 1)
    # set the cutoff: its 1.5.
    assert stops["c"].iteration == 2 and stops["c"].rung == 2 and stops["c"].value == 1.9
    assert stops["c"].cutoff == 1.5 and stops["c"].seconds_saved == 90 - 70
    assert found.seconds_saved == 50 and found.saved_fraction == round(50 / 120, 4)
    assert not any("best trial" in note for note in found.notes)


def test_what_if_uses_eval_loss_when_the_job_metric_comes_only_at_the_end():
    from schemas.api import MetricPoint
    from service.audit.what_if import what_if_asha
    job = _job_out({"a": (0, 40), "b": (5, 45)}, metric="score", mode="max", best="b")
    history = _curves({"a": (0, [2.0, 1.5, 1.2, 1.0]), "b": (5, [3.0, 2.5, 2.0, 1.8])})
    for h in history:
        h.points.append(MetricPoint(iteration=5, occurred_at=T0 + timedelta(seconds=60), metrics={"score": 50.0}))
    found = what_if_asha(job, history)
    assert (found.metric, found.mode) == ("eval_loss", "min")
    assert [s.trial_id for s in found.stopped] == ["b"] and "best trial b" in found.notes[0]


def _steps_log() -> list[EventOut]:
    job_id = uuid.uuid4()
    spec = JobSpec.model_validate(example_spec(num_samples=2, max_concurrent_trials=2))
    events = [ev.JobCreated(job_id=job_id, source="t", payload=ev.JobCreatedPayload(spec=spec)),
              ev.JobStarted(job_id=job_id, source="t", actor="ann", reason="go")]
    for status, iteration, score in (("pending", None, None), ("running", None, None), ("running", 1, 3.0),
                                     ("completed", 2, 4.0)):
        for trial in ("t1", "t2"):
            events.append(ev.TrialUpdated(job_id=job_id, source="t", payload=ev.TrialUpdatedPayload(
                trial_id=trial, status=status, iteration=iteration, params={"learning_rate": 0.01},
                metrics={} if score is None else {"score": score + (trial == "t2")})))
    events.append(ev.DecisionMade(job_id=job_id, source="t", payload=ev.DecisionMadePayload(
        kind="rung", decider="ASHA", outcome="continue", trial_id="t1", summary="ASHA let it continue",
        inputs={"rung": 1.0})))
    events.append(ev.JobCompleted(job_id=job_id, source="t", payload=ev.JobCompletedPayload(
        best_trial_id="t2", metric_name="score", best_metric=5.0)))
    return [_row(e.model_copy(update={"occurred_at": T0 + timedelta(seconds=i)}), 100 + i)
            for i, e in enumerate(events)]


def test_a_job_folds_from_its_log_rows_to_the_rows_the_projector_wrote_at_each_point():
    from service.read.as_of import event_of, fold
    from service.read.projection import project_job, project_trial
    log = _steps_log()
    job, trials = None, {}
    for n, row in enumerate(log, start=1):  # the projector's way, one event at a time
        event = event_of(row.model_dump())
        assert event.event_id == row.event_id and event.type == row.type
        if event.type == "TrialUpdated":
            trials[event.payload.trial_id] = project_trial(trials.get(event.payload.trial_id), event) or trials[
                event.payload.trial_id]
        job = project_job(job, event)
        assert fold(event_of(r.model_dump()) for r in log[:n]) == (job, trials)
    assert job["status"] == "completed" and trials["t2"]["metrics"] == {"score": 5.0}


def test_as_of_is_a_log_position_or_a_time_in_utc_and_one_rule_otherwise():
    import pytest
    from pydantic import TypeAdapter, ValidationError

    from schemas.api import AsOf
    as_of = TypeAdapter(AsOf)
    assert as_of.validate_python("42") == 42 and as_of.validate_python(7) == 7
    assert as_of.validate_python("2026-11-28T19:30:00") == datetime(2026, 11, 28, 19, 30, tzinfo=timezone.utc)
    ist = as_of.validate_python("2026-11-28T19:30:00+05:30")
    assert ist.utcoffset() == timedelta(hours=5, minutes=30)
    for bad in ("last tuesday", "-3", str(2**63), ""):
        with pytest.raises(ValidationError) as refused:
            as_of.validate_python(bad)
        assert "log position" in str(refused.value) and refused.value.error_count() == 1
    schema = as_of.json_schema()
    assert {"type": "integer", "minimum": 0, "maximum": 2**63 - 1} in schema["anyOf"]
    assert {"type": "string", "format": "date-time"} in schema["anyOf"]


def test_why_names_the_decision_that_ended_a_trial():
    from service.audit.why import explain
    log = _steps_log()
    stop = ev.DecisionMade(job_id=log[0].job_id, source="t", payload=ev.DecisionMadePayload(
        kind="rung", decider="ASHA", outcome="stop", trial_id="t3", summary="ASHA stopped it at iteration 1 (rung 1)",
        inputs={"rung": 1.0}))
    stopped = ev.TrialUpdated(job_id=log[0].job_id, source="t", payload=ev.TrialUpdatedPayload(
        trial_id="t3", status="stopped", iteration=1, reason="ASHA stopped it at iteration 1 (rung 1)"))
    log = log[:-1] + [_row(stop, 200), _row(stopped, 201)] + log[-1:]
    best = explain(log[0].job_id, "t2", log)
    assert best.verdict.startswith("completed") and "the job's best trial" in best.verdict
    assert explain(log[0].job_id, "t1", log).decisions[0].summary == "ASHA let it continue"
    early = explain(log[0].job_id, "t3", log)
    assert early.status == "stopped" and early.verdict == "stopped early: ASHA stopped it at iteration 1 (rung 1)"
    assert explain(log[0].job_id, "nope", log) is None
