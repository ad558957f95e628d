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
from service.searchers import param_space, search_algorithm
from service.steered_search import UNBOUNDED_SAMPLES
from service.verify import verify
from tests.specs import example_spec

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
SPACE = {"learning_rate": {"type": "loguniform", "min": 1e-4, "max": 1e-1},
         "batch_size": {"type": "choice", "values": [8, 16, 32]}}


def _row(event: ev.Event, offset: int) -> EventOut:
    return EventOut.model_validate({**event.model_dump(mode="json"), "kafka_partition": 0, "kafka_offset": offset})


def _score(config: dict) -> float:
    return -abs(math.log10(config["learning_rate"]) + 2) - config["batch_size"] / 100


def _record_parallel_tpe(num_samples: int = 8, concurrency: int = 2) -> list[EventOut]:
    """A TPE job run the way Ray drives the steered searcher: two trials at once, each ending
    in turn (the older first), a new suggestion whenever a slot frees up."""
    job_id = uuid.uuid4()
    spec = JobSpec.model_validate(example_spec(num_samples=num_samples, max_concurrent_trials=concurrency,
                                               search_algorithm="tpe", startup_trials=2, search_space=SPACE))
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
    fed_first = next(trial_id for s in suggestions for trial_id, _ in s["inputs"]["fed"])
    ends = [e for e in log if e.type == "TrialUpdated"]
    first = next(e for e in ends if e.payload["trial_id"] == fed_first)
    others = [e.payload["metrics"]["score"] for e in ends if e is not first]
    # The first result fed becomes the best of all (or the worst): TPE's good and bad groups change.
    best = first.payload["metrics"]["score"] >= max(others)
    altered_value = min(others) - 10 if best else max(others) + 10
    altered = [e.model_copy(update={"payload": {**e.payload, "metrics": {"score": altered_value}}}) if e is first else e
               for e in log]
    found = verify(altered)
    assert not found.ok and found.difference.startswith(f"suggestion {found.matched + 1} "), found
    assert "the log has" in found.difference and "the replay suggests" in found.difference
    # TPE samples at random until startup_trials have ended: those suggestions still match.
    assert found.matched >= 2


def test_a_log_without_suggestions_cannot_be_verified():
    log = _record_parallel_tpe(num_samples=2)
    found = verify([e for e in log if e.type != "DecisionMade"])
    assert not found.ok and "no suggestion" in found.difference
