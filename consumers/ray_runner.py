"""Runs one job's Ray Tune experiment to its end and says how the job ended (blocking).

Called on a worker thread by consumers/tuner.py. The experiment lives in
artifacts/tuning/{job_id}/; when that folder holds an unfinished experiment (the tuner was
killed), it is restored instead of started again.
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from ray import tune

from consumers.experiment import checkpoint_config, param_space, trial_inputs, tune_config
from consumers.trainable import train_trial
from consumers.tuning_state import TunerJob
from producers.trial_events import ENDED_ON_LOG, PUBLISHERS, SOURCE, STOPPING, Publish, TrialEvents
from schemas import events as ev

CANCELLED = "job cancelled"


def cancel(job_id: UUID) -> None:
    """Stop the job's trials at their next report, and every pending one."""
    STOPPING[job_id] = CANCELLED


class _StopWhenCancelled(tune.Stopper):
    """Stops every trial of the job once it is cancelled (looked up by id: Ray pickles this)."""

    def __init__(self, job_id: UUID):
        self.job_id = job_id

    def __call__(self, trial_id: str, result: dict) -> bool:
        return self.stop_all()

    def stop_all(self) -> bool:
        return self.job_id in STOPPING


def run_experiment(job: TunerJob, publish: Publish, storage_root: Path) -> ev.Event:
    spec, job_id = job.spec, job.job_id
    PUBLISHERS[job_id] = publish
    ENDED_ON_LOG[job_id] = job.ended_trials
    path = storage_root / str(job_id)
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, **trial_inputs(spec, path)),
        {"cpu": spec.resources_per_trial.cpu, "gpu": spec.resources_per_trial.gpu},
    )
    events = TrialEvents(job_id)
    if tune.Tuner.can_restore(str(path)):
        tuner = tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=False)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(spec),
            tune_config=tune_config(spec),
            run_config=tune.RunConfig(
                name=str(job_id),
                storage_path=str(storage_root.resolve()),
                callbacks=[events],
                stop=_StopWhenCancelled(job_id),
                checkpoint_config=checkpoint_config(spec),
                failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                verbose=0,
            ),
        )
    grid = tuner.fit()
    return _outcome(job, grid)


def _outcome(job: TunerJob, grid) -> ev.Event:
    spec, job_id = job.spec, job.job_id
    if STOPPING.get(job_id) == CANCELLED:
        return ev.JobCancelled(job_id=job_id, source=SOURCE, payload=ev.JobCancelledPayload(reason=CANCELLED))
    failed = [r for r in grid if r.error is not None]
    if len(failed) > spec.max_failed_trials:
        return ev.JobFailed(job_id=job_id, source=SOURCE, payload=ev.JobFailedPayload(
            error=f"{len(failed)} of {len(grid)} trials failed (max_failed_trials={spec.max_failed_trials}); "
                  f"first error: {failed[0].error}"[:10_000]))
    scored = [r for r in grid if r.error is None and spec.metric_name in (r.metrics or {})]
    if not scored:
        return ev.JobFailed(job_id=job_id, source=SOURCE, payload=ev.JobFailedPayload(
            error=f"no trial reported {spec.metric_name}"))
    pick = max if spec.metric_mode == "max" else min
    best = pick(scored, key=lambda r: r.metrics[spec.metric_name])
    return ev.JobCompleted(job_id=job_id, source=SOURCE, payload=ev.JobCompletedPayload(
        best_trial_id=best.metrics["trial_id"],
        metric_name=spec.metric_name,
        best_metric=float(best.metrics[spec.metric_name]),
        best_params={k: v for k, v in best.config.items() if isinstance(v, (bool, int, float, str))},
        best_run_id=best.metrics.get("run_id"),
        best_checkpoint_path=str(Path(best.metrics["run_dir"]) / "checkpoint") if "run_dir" in best.metrics else None,
    ))
