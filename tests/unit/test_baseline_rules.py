"""The job's baseline, without Kafka or a database: the BaselineEvaluated contract, how the read
model and the tuner fold it, and each trial's gain over it (positive is better in either mode)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from app.cli.watch import summary_lines
from consumers.tuner.state import next_state
from schemas import events as ev
from schemas.job_spec import JobSpec
from service.read.as_of import fold
from service.read.projection import project_job
from service.read.queries import _job_out, gain
from tests.support.specs import example_spec

JOB = uuid.uuid4()
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def _log(metric_name: str = "exact_match", mode: str = "max") -> list[ev.Event]:
    spec = JobSpec.model_validate(example_spec(metric_name=metric_name, metric_mode=mode))
    return [
        ev.JobCreated(job_id=JOB, source="t", occurred_at=_at(0), payload=ev.JobCreatedPayload(spec=spec)),
        ev.JobStarted(job_id=JOB, source="t", occurred_at=_at(1)),
        ev.JobClaimed(job_id=JOB, source="tuner", occurred_at=_at(2), claim=1,
                      payload=ev.JobClaimedPayload(tuner_id="a", generation=1)),
    ]


def _baseline(claim: int | None = 1, at: float = 3, **metrics: float) -> ev.BaselineEvaluated:
    return ev.BaselineEvaluated(job_id=JOB, source="tuner", occurred_at=_at(at), claim=claim, payload=ev.BaselineEvaluatedPayload(
        metrics=metrics or {"exact_match": 0.0, "contains": 0.6, "eval_loss": 5.36}, path="/a/baseline", eval_size=30))


def _trial(trial_id: str, at: float, **metrics: float) -> ev.TrialUpdated:
    return ev.TrialUpdated(job_id=JOB, source="tuner", occurred_at=_at(at), claim=1, payload=ev.TrialUpdatedPayload(
        trial_id=trial_id, status="completed", metrics=metrics, iteration=1))


def test_a_baseline_carries_metrics_or_the_error_that_stopped_it_and_only_finite_numbers():
    with pytest.raises(ValidationError, match="metrics, or the error"):
        ev.BaselineEvaluatedPayload()
    with pytest.raises(ValidationError):
        ev.BaselineEvaluatedPayload(metrics={"eval_loss": float("nan")})
    assert ev.BaselineEvaluatedPayload(error="OSError: no such model").metrics == {}
    body = ev.serialize_event(_baseline())
    assert ev.parse_event(body) == _baseline().model_copy(update={"event_id": ev.parse_event(body).event_id})


def test_the_read_model_keeps_the_latest_baseline_even_after_the_job_ended_and_fences_a_replaced_owner():
    job, _ = fold([*_log(), _baseline(exact_match=0.1)])
    assert job["baseline"]["metrics"] == {"exact_match": 0.1}
    done = ev.JobCompleted(job_id=JOB, source="tuner", occurred_at=_at(9), claim=1, payload=ev.JobCompletedPayload(
        best_trial_id=None, metric_name="exact_match", best_metric=None))
    job, _ = fold([*_log(), done, _baseline(at=10, exact_match=0.2)])
    assert (job["status"], job["baseline"]["metrics"]) == ("completed", {"exact_match": 0.2})
    job, _ = fold([*_log(), _baseline(claim=7, exact_match=0.3)])  # claim 7 is nobody's: fenced
    assert job["baseline"] is None
    assert project_job(None, _baseline()) is None


@pytest.mark.parametrize(("mode", "trial", "expected"), [("max", 0.4, 0.4), ("min", 1.1, 4.26)])
def test_each_trial_shows_its_gain_over_the_baseline_positive_when_better(mode, trial, expected):
    name = "exact_match" if mode == "max" else "eval_loss"
    job, trials = fold([*_log(name, mode), _baseline(), _trial("t1", 4, **{name: trial}), _trial("t2", 5, other=1.0)])
    out = _job_out(job, list(trials.values()), 5)
    assert out.baseline.metric == (0.0 if mode == "max" else 5.36)
    by_id = {t.trial_id: t.gain for t in out.trials}
    assert by_id["t1"] == pytest.approx(expected) and by_id["t2"] is None
    assert gain(None, 1.0, "max") is None and gain(1.0, None, "min") is None
    lines = summary_lines({**out.model_dump(mode="json"), "best_trial": out.model_dump(mode="json")["trials"][0]})
    assert any(line.startswith(f"baseline (untuned base model): {name}=") for line in lines)
    assert any("over the baseline" in line for line in lines)


def test_a_job_without_a_baseline_shows_no_gain():
    job, trials = fold([*_log(), _trial("t1", 4, exact_match=0.5)])
    out = _job_out(job, list(trials.values()), 4)
    assert out.baseline is None and out.trials[0].gain is None


def test_the_tuner_remembers_a_baseline_through_the_jobs_end_and_its_extension():
    job = None
    for event in _log():
        job = next_state(job, event)
    assert not job.baseline_done
    job = next_state(job, _baseline())
    assert job.baseline_done
    assert next_state(job, _baseline(claim=9)) is job  # fenced: changes nothing
    done = ev.JobCompleted(job_id=JOB, source="tuner", claim=1, payload=ev.JobCompletedPayload(
        best_trial_id=None, metric_name="exact_match", best_metric=None))
    job = next_state(job, done)
    assert job.spec is None and job.baseline_done  # kept in the slim form
    extended = ev.JobExtended(job_id=JOB, source="t", payload=ev.JobExtendedPayload(
        num_samples_added=1, spec=JobSpec.model_validate(example_spec(metric_name="exact_match", num_samples=5))))
    assert next_state(job, extended).baseline_done


def test_only_pretrained_models_have_a_baseline(tmp_path):
    from training.baseline import has_baseline
    from training.folders import Folders
    from tests.support.hf_fixtures import write_tiny_checkpoint

    folders = Folders(models=tmp_path)
    write_tiny_checkpoint(tmp_path / "tiny-qwen3", "qwen3")
    assert not has_baseline("tiny-gemma3", folders)  # random initial weights: nothing to compare with
    assert has_baseline("tiny-qwen3", folders)


def test_the_watch_view_off_a_terminal_ends_its_last_view_before_the_summary_and_shows_the_gain():
    import io

    from rich.console import Console

    from app.cli.watch import watch

    events = [*_log(), _baseline(), _trial("t1", 4, exact_match=0.9)]
    events.append(ev.JobCompleted(job_id=JOB, source="tuner", occurred_at=_at(5), claim=1, payload=ev.JobCompletedPayload(
        best_trial_id="t1", metric_name="exact_match", best_metric=0.9)))
    job, trials = fold(events)
    view = _job_out(job, list(trials.values()), 5).model_dump(mode="json")

    class Api:
        def get(self, path: str):
            return [] if path.endswith("/history") else view

    out = io.StringIO()
    watch(Api(), str(JOB), Console(file=out, width=200))
    lines = out.getvalue().splitlines()
    assert f"job {JOB} completed" in lines  # a line of its own, not glued to the view's last line
    assert any(line.startswith("best trial t1: exact_match=0.9, +0.9 over the baseline") for line in lines)


def test_the_demo_reads_answers_only_under_the_tuning_folder_and_skips_what_is_not_a_prediction(tmp_path):
    from app.cli.demo import _answers

    root = tmp_path / "tuning"
    good = root / "job" / "baseline"
    good.mkdir(parents=True)
    (good / "predictions.jsonl").write_text('{"prompt": "q", "prediction": "a", "reference": "a"}\n')
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "predictions.jsonl").write_text('{"prompt": "secret", "prediction": "x", "reference": "y"}\n')
    broken = root / "job" / "broken"
    broken.mkdir()
    (broken / "predictions.jsonl").write_text("not json\n")
    assert _answers(str(good), root) == [{"prompt": "q", "prediction": "a", "reference": "a"}]
    assert _answers(str(outside), root) == []  # a path on the log is another system's word
    assert _answers(str(root / "job" / ".." / ".." / "elsewhere"), root) == []
    assert _answers(str(broken), root) == [] and _answers(None, root) == []
