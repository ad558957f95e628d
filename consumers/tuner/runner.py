"""Runs one job's Ray Tune experiment to its end and says how the job ended (blocking).

Called on a worker thread by the tuner service. The experiment lives in
artifacts/tuning/{job_id}/; when that folder holds an unfinished experiment (the tuner was
killed), it is restored instead of started again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from uuid import UUID

import ray
from ray import tune

from producers.baseline import BaselineTask
from consumers.tuner.execution import TrialExecution, trial_execution
from consumers.tuner.experiment import checkpoint_config, tune_config
from service.search.searchers import param_space
from consumers.tuner.schedulers import HandedOver
from producers.job_outcome import job_failed, job_outcome
from producers.job_run import JobRun
from producers.trial_events import TrialEvents
from schemas import events as ev
from schemas.lineage import SeedTrial
from training.folders import Folders


class _StopWhenCancelled(tune.Stopper):
    """Stops every trial of the job once it is cancelled or its time budget is spent (looked
    up by id: Ray pickles this)."""

    def __init__(self, job_id: UUID):
        self.job_id = job_id

    def __call__(self, trial_id: str, result: dict) -> bool:
        return self.stop_all()

    def stop_all(self) -> bool:
        run = JobRun.of(self.job_id)
        run.out_of_budget(time.monotonic())
        return run.stop_reason is not None


def unmet_request(request: dict[str, float], cluster: dict[str, float]) -> str | None:
    """Why one trial's request can never be met by the cluster's total resources (None if it can)."""
    short = {name: amount for name, amount in request.items() if amount > 0 and cluster.get(name, 0) < amount}
    if not short:
        return None
    asks = ", ".join(f"{name}={amount:g}" for name, amount in short.items())
    has = ", ".join(f"{name}={cluster.get(name, 0):g}" for name in short)
    return f"a trial asks for {asks} but the whole Ray cluster has {has}"


def run_experiment(run: JobRun, seeds: Sequence[SeedTrial], storage_root: Path, folders: Folders) -> ev.Event | None:
    """The job's terminal event, or None when the job was handed over to another tuner."""
    try:
        return _run(run, seeds, storage_root, folders)
    except HandedOver:
        return None


def _run(run: JobRun, seeds: Sequence[SeedTrial], storage_root: Path, folders: Folders) -> ev.Event:
    job_id, spec = run.job_id, run.spec
    path = storage_root / str(job_id)
    resources = spec.resources_per_trial
    if (missing := unmet_request(resources.ray_request(), ray.cluster_resources())) is not None:
        return job_failed(job_id, f"resources_per_trial: {missing}; a trial would never be scheduled")
    restoring = tune.Tuner.can_restore(str(path))
    execution = trial_execution(run, path, folders, restoring)
    baseline = BaselineTask(run, path, folders)
    baseline.start()
    try:
        return job_outcome(run, _tuner(run, seeds, storage_root, path, execution, restoring).fit())
    finally:
        baseline.finish()
        execution.close()


def _tuner(run: JobRun, seeds: Sequence[SeedTrial], storage_root: Path, path: Path, execution: TrialExecution,
           restoring: bool) -> tune.Tuner:
    job_id, spec = run.job_id, run.spec
    if restoring:  # (the callbacks come back with the saved experiment)
        return tune.Tuner.restore(str(path), execution.trainable, resume_unfinished=True, resume_errored=False)
    return tune.Tuner(
        execution.trainable,
        param_space=param_space(spec),
        tune_config=tune_config(spec, job_id, seeds),
        run_config=tune.RunConfig(
            name=str(job_id),
            storage_path=str(storage_root.resolve()),
            callbacks=[TrialEvents(job_id), *execution.callbacks],
            stop=_StopWhenCancelled(job_id),
            checkpoint_config=checkpoint_config(spec),
            # A trial whose worker or node died (or that raised) runs again from its last
            # checkpoint, up to max_trial_retries times; each retry is a `stale` TrialUpdated.
            failure_config=tune.FailureConfig(max_failures=spec.max_trial_retries, fail_fast=False),
            verbose=0,
        ),
    )
