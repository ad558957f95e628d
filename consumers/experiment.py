"""A job spec in Ray Tune's terms: parameter space, search algorithm, scheduler, config.

Pure translation: nothing here starts Ray. consumers/tuner.py runs what this builds.
"""

from __future__ import annotations

import math

from ray import tune
from ray.tune.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    PopulationBasedTraining,
    TrialScheduler,
)
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.basic_variant import BasicVariantGenerator

from schemas import search_space as ss
from schemas.job_spec import JobSpec
from training.hyperparams import Hyperparameters

TIME_ATTR = "training_iteration"  # one iteration = one report = eval_every training steps


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


def reports_per_trial(spec: JobSpec) -> int:
    """How many times a full trial reports: the scheduler's time budget (max_t)."""
    hp = Hyperparameters.from_mapping(
        {k: v for k, v in spec.fixed_params.items() if k in ("max_steps", "eval_every")}
    )
    steps = hp.max_steps or 1000
    return max(1, math.ceil(steps / hp.eval_every))


def search_algorithm(spec: JobSpec) -> Searcher | BasicVariantGenerator:
    if spec.search_algorithm == "tpe":
        from optuna.samplers import TPESampler
        from ray.tune.search.optuna import OptunaSearch

        searcher = OptunaSearch(sampler=TPESampler(seed=spec.seed), seed=spec.seed)
        # Ray ignores max_concurrent_trials once it is given a searcher: limit the searcher.
        return ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent_trials)
    return BasicVariantGenerator(max_concurrent=spec.max_concurrent_trials, random_state=spec.seed)


def scheduler(spec: JobSpec) -> TrialScheduler:
    max_t = reports_per_trial(spec)
    match spec.scheduler:
        case "asha":
            return ASHAScheduler(time_attr=TIME_ATTR, max_t=max_t, grace_period=1, reduction_factor=2)
        case "hyperband":
            return HyperBandScheduler(time_attr=TIME_ATTR, max_t=max_t, reduction_factor=2)
        case "pbt":
            mutations = {
                name: ray_domain(p)
                for name, p in spec.search_space.items()
                if not isinstance(p, ss.Grid)
            }
            return PopulationBasedTraining(
                time_attr=TIME_ATTR,
                perturbation_interval=max(1, max_t // 4),
                hyperparam_mutations=mutations,
                seed=spec.seed,
            )
    return FIFOScheduler()


def tune_config(spec: JobSpec) -> tune.TuneConfig:
    return tune.TuneConfig(
        metric=spec.metric_name,
        mode=spec.metric_mode,
        search_alg=search_algorithm(spec),
        scheduler=scheduler(spec),
        num_samples=spec.num_samples,
        max_concurrent_trials=spec.max_concurrent_trials,
        time_budget_s=spec.time_budget_s,
        reuse_actors=True,
    )
