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
from consumers.tuner.experiment import checkpoint_config, intermediate_scores, trial_inputs, tune_config
from consumers.tuner.pack_actor import PackSlots, pack_name, start_pack, stop_pack
from consumers.tuner.packing import plan_packing
from service.search.searchers import param_space
from consumers.tuner.schedulers import HandedOver
from consumers.tuner.trainable import packed_trial, train_trial
from producers.job_outcome import job_failed, job_outcome
from producers.job_run import JobRun
from producers.trial_events import TrialEvents
from schemas import events as ev
from schemas.lineage import SeedTrial
from training.catalog import resolve_in
from training.folders import Folders

# What a packed trial's trainable reserves: it waits on the pack actor, which holds the resources.
PACKED_TRIAL_CPU = 0.01


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
    plan = plan_packing(spec, resolve_in(spec.base_model_id, folders).kind == "built-in")
    if plan is not None and not tune.Tuner.can_restore(str(path)):  # once per job, not per owner
        run.decide("packing", "tuner", "pack" if plan.packed else "unpacked", plan.reason,
                   max_trials=spec.packing.max_trials, slots=plan.slots, rank=plan.rank)
    inputs = trial_inputs(spec, path, folders)
    if plan is not None and plan.packed:
        start_pack(job_id, resources, plan.slots, dataset_key=spec.dataset_key, model_id=spec.base_model_id,
                   folders=inputs["folders"], rank=plan.rank, targets=plan.targets, seed=plan.seed,
                   intermediate_scores=intermediate_scores(spec), gpus=resources.gpu)
        # The pack holds the trial's resources; its trials' trainables only relay.
        trainable = tune.with_resources(
            tune.with_parameters(packed_trial, job_folder=inputs["job_folder"], pack=pack_name(job_id),
                                 slots=plan.slots), {"cpu": PACKED_TRIAL_CPU})
    else:
        trainable = tune.with_resources(tune.with_parameters(train_trial, **inputs),
                                        {"cpu": resources.cpu, "gpu": resources.gpu, **resources.custom})
    baseline = BaselineTask(run, path, folders)
    baseline.start()
    try:
        return job_outcome(run, _tuner(run, seeds, storage_root, path, trainable).fit())
    finally:
        baseline.finish()
        stop_pack(job_id)


def _tuner(run: JobRun, seeds: Sequence[SeedTrial], storage_root: Path, path: Path, trainable) -> tune.Tuner:
    job_id, spec = run.job_id, run.spec
    if tune.Tuner.can_restore(str(path)):
        return tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=False)
    return tune.Tuner(
        trainable,
        param_space=param_space(spec),
        tune_config=tune_config(spec, job_id, seeds),
        run_config=tune.RunConfig(
            name=str(job_id),
            storage_path=str(storage_root.resolve()),
            callbacks=[TrialEvents(job_id), PackSlots(job_id)],
            stop=_StopWhenCancelled(job_id),
            checkpoint_config=checkpoint_config(spec),
            # A trial whose worker or node died (or that raised) runs again from its last
            # checkpoint, up to max_trial_retries times; each retry is a `stale` TrialUpdated.
            failure_config=tune.FailureConfig(max_failures=spec.max_trial_retries, fail_fast=False),
            verbose=0,
        ),
    )
