"""A job's public error and a failed trial's reason are the root cause in one line: no remote
traceback, no pid, no node IP, no server paths outside the job's folder; the whole traceback is
in the tuner's log."""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace

import ray.cloudpickle as cloudpickle
from ray.exceptions import RayTaskError
from structlog.testing import capture_logs

from producers.error_text import one_line
from producers.job_outcome import job_failed
from producers.trial_events import _error_text
from training.dataset_files import MalformedDataset

JOB = uuid.UUID("00000000-0000-0000-0000-0000000000bb")
REMOTE_TRACE = (
    "\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=4242, ip=192.0.2.7, actor_id=abc123, repr=train_trial)\n"
    '  File "/srv/tunix/.venv/lib/python3.11/site-packages/ray/tune/trainable/function_trainable.py", line 45, in f\n'
    "    return self._run()\n"
    '  File "/srv/tunix/training/datasets.py", line 108, in load_dataset\n'
    "    raise MalformedDataset(shown, exc.line, exc.problem) from None\n"
    "training.dataset_files.MalformedDataset: bad-v1/train.jsonl:3: not valid JSON: Expecting value\n"
)
WANTED = "MalformedDataset: bad-v1/train.jsonl:3: not valid JSON: Expecting value"


def _ray_error() -> RayTaskError:
    cause = MalformedDataset(Path("bad-v1/train.jsonl"), 3, "not valid JSON: Expecting value")
    return RayTaskError("ImplicitFunc.train", REMOTE_TRACE, cause, proctitle="ray::ImplicitFunc.train()", pid=4242,
                        ip="192.0.2.7").as_instanceof_cause()


def _leaks(text: str) -> list[str]:
    return [s for s in ("4242", "192.0.2.7", "abc123", "/srv/tunix", "\n", "Traceback", "ray::") if s in text]


def test_a_ray_error_is_its_root_cause_in_one_line():
    error = _ray_error()
    assert "pid=4242" in str(error)  # what Ray's own message carries
    assert one_line(error) == WANTED


def test_a_traceback_text_is_its_last_exception_line_without_ids_or_paths():
    text = f"RayTaskError(MalformedDataset): {REMOTE_TRACE}"
    assert one_line(text, JOB) == WANTED
    wrapped = REMOTE_TRACE + "\nThe above exception was the direct cause of the following exception:\n\n" + \
        "ray::f() (pid=1, ip=10.0.0.9)\n  File \"/x.py\", line 1, in f\nValueError: could not read /srv/tunix/secret.json"
    assert one_line(wrapped, JOB) == "ValueError: could not read …/secret.json"


def test_a_path_in_the_jobs_own_folder_is_shown_from_the_job_on():
    path = f"/srv/tunix/artifacts/tuning/{JOB}/runs/t1/checkpoint"
    assert one_line(f"OSError: cannot write {path}", JOB) == f"OSError: cannot write {JOB}/runs/t1/checkpoint"


def test_job_failed_publishes_one_line_and_logs_the_whole_traceback():
    error = _ray_error()
    with capture_logs() as logs:
        event = job_failed(JOB, f"{type(error).__name__}: {error}")  # as the tuner's service builds it
    assert event.payload.error == WANTED and _leaks(event.payload.error) == []
    (logged,) = [entry for entry in logs if entry["event"] == "job failed"]
    assert "pid=4242" in logged["error"] and logged["job_id"] == str(JOB)


def test_too_many_failed_trials_name_the_first_cause_in_one_line():
    error = _ray_error()
    event = job_failed(JOB, f"2 of 2 trials failed; first error: {one_line(error, JOB)}", detail=error)
    assert event.payload.error == f"2 of 2 trials failed; first error: {WANTED}"


def _trial(tmp_path: Path, pickled: bool) -> SimpleNamespace:
    (tmp_path / "error.txt").write_text(f"Failure # 1 (occurred at 2026-01-01_00-00-00)\n{_ray_error()}\n")
    if pickled:
        (tmp_path / "error.pkl").write_bytes(cloudpickle.dumps(_ray_error()))
    return SimpleNamespace(trial_id="t1", error_file=str(tmp_path / "error.txt"),
                           pickled_error_file=str(tmp_path / "error.pkl"))


def test_a_failed_trials_reason_is_one_line_from_its_pickled_exception(tmp_path):
    with capture_logs() as logs:
        reason = _error_text(_trial(tmp_path, pickled=True), JOB)
    assert reason == WANTED and _leaks(reason) == []
    (logged,) = [entry for entry in logs if entry["event"] == "trial failed"]
    assert "pid=4242" in logged["error"] and logged["trial_id"] == "t1"


def test_without_a_pickle_the_reason_is_the_text_traces_last_exception_line(tmp_path):
    reason = _error_text(_trial(tmp_path, pickled=False), JOB)
    assert reason == WANTED and _leaks(reason) == []


def test_the_public_error_is_always_storable_on_the_log():
    from schemas import events as ev
    from schemas.values import storable_text

    text = one_line(ValueError("bad\x00 \ud800 value"))
    assert storable_text(text) == text and "bad" in text and "value" in text
    ev.JobFailedPayload(error=text)  # the tuner's last event for the job cannot be refused
