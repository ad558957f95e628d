"""A job spec in Ray Tune's terms: parameter space, search algorithm, scheduler, config.

Pure translation: nothing here starts Ray; consumers/tuner/runner.py runs what this builds.
The schedulers write why they stop or change a trial into the job's JobRun (found by job id:
Ray pickles schedulers with the experiment).
"""

from __future__ import annotations

from pathlib import Path

from ray import tune
from ray.tune.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    PopulationBasedTraining,
    TrialScheduler,
)
from ray.tune.search import ConcurrencyLimiter, Searcher
from optuna.samplers import TPESampler
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.search.optuna import OptunaSearch

from producers.job_run import JobRun
from schemas import search_space as ss
from schemas.job_spec import JobSpec
from training.folders import Folders
from training.hyperparams import reports_per_run

TIME_ATTR = "training_iteration"  # one iteration = one report = eval_every training steps


def trial_inputs(spec: JobSpec, job_folder: Path, folders: Folders) -> dict:
    """What every trial of the job gets besides its config (see consumers/tuner/trainable.py)."""
    return {
        "job_folder": str(job_folder.resolve()), "dataset_key": spec.dataset_key, "model_id": spec.base_model_id,
        "metric_name": spec.metric_name, "scheduler": spec.scheduler,
        "folders": folders.resolved(),  # trials run in Ray's working directories
        "gpus": spec.resources_per_trial.gpu,
    }


def ray_domain(param: ss.ParamSpec, as_grid: bool = False):
    match param:
        case ss.Grid(values=values):
            return tune.grid_search(values)
        case ss.Choice(values=values):
            return tune.grid_search(values) if as_grid else tune.choice(values)
        case ss.Uniform(min=lo, max=hi):
            return tune.uniform(lo, hi)
        case ss.QLogUniform(min=lo, max=hi, q=q):
            return tune.qloguniform(lo, hi, q)
        case ss.LogUniform(min=lo, max=hi):
            return tune.loguniform(lo, hi)
        case ss.QUniform(min=lo, max=hi, q=q):
            return tune.quniform(lo, hi, q)
        case ss.Normal(mean=mean, sd=sd):
            return tune.randn(mean, sd)
        case ss.RandInt(min=lo, max=hi):
            return tune.randint(lo, hi)
    raise TypeError(f"no Ray domain for {param!r}")


def param_space(spec: JobSpec) -> dict:
    """Searched parameters as Ray domains, fixed ones as constants."""
    grid = spec.search_algorithm == "grid"
    return {
        **spec.fixed_params,
        **{name: ray_domain(p, as_grid=grid) for name, p in spec.search_space.items()},
    }


def pbt_interval(spec: JobSpec) -> int:
    """Reports between PBT's looks at a trial: four per trial."""
    return max(1, reports_per_trial(spec) // 4)


def checkpoint_config(spec: JobSpec) -> tune.CheckpointConfig:
    """Ray keeps each trial's latest checkpoint (resume needs no more). PBT clones a strong
    trial's checkpoint from its last perturbation, up to an interval old: it needs the
    checkpoints of a whole interval kept, or it restores one Ray has deleted."""
    return tune.CheckpointConfig(num_to_keep=pbt_interval(spec) + 1 if spec.scheduler == "pbt" else 1)


def reports_per_trial(spec: JobSpec) -> int:
    """The schedulers' time budget (max_t), so none stops a trial before its score."""
    return reports_per_run(spec.fixed_params)


class HandedOver(Exception):
    """Raised inside Ray's loop to stop a job's experiment where it is: its state is saved,
    its running trials resume from their last checkpoints under the job's next owner."""


class _ActsForAJob:
    """A scheduler of one job's experiment: knows the job, to write into its JobRun."""

    def __init__(self, job_id, **kwargs):
        super().__init__(**kwargs)
        self.job_id = job_id

    @property
    def run(self) -> JobRun:
        return JobRun.of(self.job_id)


class _SavesStateOnTrialChanges(_ActsForAJob):
    """Saves Ray's experiment state (which trials exist and which ended) as soon as a trial is
    added or ends, on top of Ray's own periodic saves (TUNE_GLOBAL_CHECKPOINT_S "auto", at
    most ~5% of the driver's time). A tuner killed with -9 then restores a list that knows
    every trial whose creation or end is on the log: none is run twice, none is lost. Saving
    at every loop step instead (period 0) cost the driver ~9% of a core on two cores.

    The save happens in choose_trial_to_run, which Ray calls at the start of every step,
    after the previous step's status changes."""

    _changed = False

    def on_trial_add(self, tune_controller, trial) -> None:
        super().on_trial_add(tune_controller, trial)
        self._changed = True

    def on_trial_complete(self, tune_controller, trial, result) -> None:
        super().on_trial_complete(tune_controller, trial, result)
        self._changed = True

    def on_trial_error(self, tune_controller, trial) -> None:
        super().on_trial_error(tune_controller, trial)
        self._changed = True

    def on_trial_remove(self, tune_controller, trial) -> None:
        super().on_trial_remove(tune_controller, trial)
        self._changed = True

    def choose_trial_to_run(self, tune_controller):
        # Ray 2.60 hands schedulers a wrapper that hides checkpoint(); the controller is behind it.
        controller = getattr(tune_controller, "_tune_controller", tune_controller)
        if self._changed or self.run.handing_over:
            self._changed = False
            controller.checkpoint(force=True)
        if self.run.handing_over:
            raise HandedOver(str(self.job_id))
        return super().choose_trial_to_run(tune_controller)


class _RecordsEarlyStops(_ActsForAJob):
    """Writes down why the scheduler stopped a trial before its end, for its TrialUpdated."""

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        at = result.get(TIME_ATTR, 0)
        max_t = getattr(self, "_max_t", None) or self._max_t_attr  # ASHA / HyperBand
        if decision == TrialScheduler.STOP and at < max_t:
            self.run.scheduler_stops[trial.trial_id] = self.stop_reason(trial, at, result)
        return decision

    def stop_reason(self, trial, at: int, result: dict) -> str:
        value = result.get(self._metric)
        reason = f"{type(self).__name__} stopped it at iteration {at}: {self._metric}={value}"
        bracket = getattr(self, "_trial_info", {}).get(trial.trial_id)
        for milestone, recorded in getattr(bracket, "_rungs", ()):
            if trial.trial_id in recorded and at >= milestone:
                others = {k: v for k, v in recorded.items() if k != trial.trial_id}
                cutoff = bracket.cutoff(others)
                if cutoff is not None:
                    reason += f", below the cutoff {self._metric_op * cutoff:.4g} of rung {milestone}"
                break
        return reason


class FIFO(_SavesStateOnTrialChanges, FIFOScheduler):
    pass


class ASHA(_SavesStateOnTrialChanges, _RecordsEarlyStops, ASHAScheduler):
    pass


class HyperBand(_SavesStateOnTrialChanges, _RecordsEarlyStops, HyperBandScheduler):
    pass


class PBT(_SavesStateOnTrialChanges, PopulationBasedTraining):
    """Population Based Training that writes down each exploit (which trial's checkpoint this
    one continues from, and its new hyperparameters) for the trial's next TrialUpdated."""

    def _exploit(self, tune_controller, trial, trial_to_clone):
        super()._exploit(tune_controller, trial, trial_to_clone)
        searched = {k: trial.config[k] for k in self._hyperparam_mutations if k in trial.config}
        self.run.scheduler_notes[trial.trial_id] = (
            f"PBT: continues from trial {trial_to_clone.trial_id}'s checkpoint at iteration "
            f"{self._trial_state[trial_to_clone].last_train_time} with {searched}"
        )


class _TPE(OptunaSearch):
    """Optuna's TPE; intermediate results without the job's metric (the score comes with the
    final evaluation) are not Optuna's business: it only needs them for pruning."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.metric in result:
            super().on_trial_result(trial_id, result)


def search_algorithm(spec: JobSpec) -> Searcher | BasicVariantGenerator:
    if spec.search_algorithm == "tpe":
        searcher = _TPE(sampler=TPESampler(seed=spec.seed), seed=spec.seed)
        # Ray ignores max_concurrent_trials once it is given a searcher: limit the searcher.
        return ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent_trials)
    return BasicVariantGenerator(max_concurrent=spec.max_concurrent_trials, random_state=spec.seed)


def scheduler(spec: JobSpec, job_id) -> TrialScheduler:
    max_t = reports_per_trial(spec)
    match spec.scheduler:
        case "asha":
            return ASHA(job_id, time_attr=TIME_ATTR, max_t=max_t, grace_period=1, reduction_factor=2)
        case "hyperband":
            return HyperBand(job_id, time_attr=TIME_ATTR, max_t=max_t, reduction_factor=2)
        case "pbt":
            return PBT(
                job_id,
                time_attr=TIME_ATTR,
                perturbation_interval=pbt_interval(spec),
                hyperparam_mutations={name: ray_domain(spec.search_space[name]) for name in spec.perturbed_params()},
            )
    return FIFO(job_id)


def tune_config(spec: JobSpec, job_id) -> tune.TuneConfig:
    return tune.TuneConfig(
        metric=spec.metric_name,
        mode=spec.metric_mode,
        search_alg=search_algorithm(spec),
        scheduler=scheduler(spec, job_id),
        num_samples=spec.num_samples,
        max_concurrent_trials=spec.max_concurrent_trials,
        # The tuner enforces time_budget_s itself (runner.py), counted over every owner of the
        # job from the log: Ray's own budget would start again at each restore.
        time_budget_s=None,
        reuse_actors=True,
    )
