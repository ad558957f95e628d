"""A job spec in Ray Tune's terms: parameter space, search algorithm, scheduler, config.

Pure translation: nothing here starts Ray; consumers/tuner/runner.py runs what this builds,
with the schedulers of consumers/tuner/schedulers.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ray import tune
from ray.tune.schedulers import TrialScheduler

from consumers.tuner.schedulers import ASHA, FIFO, PBT, TIME_ATTR, HyperBand
from schemas.job_spec import JobSpec
from schemas.lineage import SeedTrial
from service.search.searchers import TPE, ray_domain, search_algorithm
from service.search.steered_search import UNBOUNDED_SAMPLES
from training.folders import Folders
from training.catalog import EVALUATION_METRICS
from training.hyperparams import reports_per_run


def trial_inputs(spec: JobSpec, job_folder: Path, folders: Folders) -> dict:
    """What every trial of the job gets besides its config (see consumers/tuner/trainable.py)."""
    return {
        "job_folder": str(job_folder.resolve()), "dataset_key": spec.dataset_key, "model_id": spec.base_model_id,
        "intermediate_scores": intermediate_scores(spec),
        "folders": folders.resolved(),  # trials run in Ray's working directories
        "gpus": spec.resources_per_trial.gpu,
    }


def intermediate_scores(spec: JobSpec) -> bool:
    """Whether every intermediate report carries the evaluation metrics: a FIFO scheduler never
    looks at intermediate results, the others rank trials by them."""
    return spec.metric_name in EVALUATION_METRICS and spec.scheduler != "fifo"


_TPE = TPE  # experiments saved by an earlier tuner pickled the searcher under this name


def pbt_interval(spec: JobSpec) -> int:
    """Reports between PBT's looks at a trial: four per trial."""
    return max(1, reports_per_trial(spec) // 4)


def checkpoint_config(spec: JobSpec) -> tune.CheckpointConfig:
    """Ray keeps each trial's last two checkpoints: the experiment state is saved after every
    report (schedulers.py), so the checkpoint a restore finds in it is the newest or the one
    before, never one Ray has deleted since (with one kept, a tuner killed between Ray's
    registering a checkpoint and saving the state restored a deleted one). PBT clones a strong
    trial's checkpoint from its last perturbation, up to an interval old: it needs the
    checkpoints of a whole interval kept."""
    return tune.CheckpointConfig(num_to_keep=pbt_interval(spec) + 1 if spec.scheduler == "pbt" else 2)


def reports_per_trial(spec: JobSpec) -> int:
    """The schedulers' time budget (max_t), so none stops a trial before its score."""
    return reports_per_run(spec.fixed_params)


def scheduler(spec: JobSpec, job_id) -> TrialScheduler:
    max_t = reports_per_trial(spec)
    match spec.scheduler:
        case "asha":
            return ASHA(job_id, spec.trial_lease_s, time_attr=TIME_ATTR, max_t=max_t, grace_period=1, reduction_factor=2)
        case "hyperband":
            return HyperBand(job_id, spec.trial_lease_s, time_attr=TIME_ATTR, max_t=max_t, reduction_factor=2)
        case "pbt":
            return PBT(
                job_id,
                spec.trial_lease_s,
                time_attr=TIME_ATTR,
                perturbation_interval=pbt_interval(spec),
                hyperparam_mutations={name: ray_domain(spec.search_space[name]) for name in spec.perturbed_params()},
            )
    return FIFO(job_id, spec.trial_lease_s)


def tune_config(spec: JobSpec, job_id, seeds: Sequence[SeedTrial] = ()) -> tune.TuneConfig:
    return tune.TuneConfig(
        metric=spec.metric_name,
        mode=spec.metric_mode,
        search_alg=search_algorithm(spec, job_id, seeds),
        scheduler=scheduler(spec, job_id),
        # The steered searcher decides how many trials run, and how many at once, from the
        # job's JobRun at every step: a JobAdjusted or JobExtended changes both while it runs.
        num_samples=UNBOUNDED_SAMPLES,
        max_concurrent_trials=None,
        # The tuner enforces time_budget_s itself (runner.py), counted over every owner of the
        # job from the log: Ray's own budget would start again at each restore.
        time_budget_s=None,
        reuse_actors=True,
    )
