"""A job's search space and searcher in Ray Tune's terms, shared by the tuner, which runs the
searcher live (consumers/tuner/experiment.py), and the audit, which runs the same searcher
again offline over the results the log recorded (service/audit/verify.py)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from optuna.samplers import TPESampler
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from schemas import search_space as ss
from schemas.job_spec import JobSpec
from schemas.lineage import SeedTrial
from service.search.steered_search import SteeredSearch, SteeredVariants


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
    """Searched parameters as Ray domains, fixed ones as constants. Searched ones in name order:
    a searcher draws them in this order, and the spec's own order does not survive every copy
    of the log (PostgreSQL's JSONB orders keys its own way), so a replay would draw differently."""
    grid = spec.search_algorithm == "grid"
    return {
        **spec.fixed_params,
        **{name: ray_domain(spec.search_space[name], as_grid=grid) for name in sorted(spec.search_space)},
    }


def searcher_seed(spec: JobSpec, job_id: UUID) -> int:
    """The job's seed, or one derived from its id: a job without a seed still searches the
    same way every time it is replayed."""
    return spec.seed if spec.seed is not None else job_id.int % 2**31


class TPE(OptunaSearch):
    """Optuna's TPE; intermediate results without the job's metric (the score comes with the
    final evaluation) are not Optuna's business: it only needs them for pruning."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.metric in result:
            super().on_trial_result(trial_id, result)


def tpe(spec: JobSpec, seed: int, seeds: Sequence[SeedTrial] = ()) -> TPE:
    """The job's TPE, seeded with its parents' trials as completed ones."""
    points = [dict(seed.params) for seed in seeds]
    # Optuna samples at random until 10 trials completed, seeds included; a warm start's
    # parents were its exploration, so with a few seeds TPE models them from the start.
    startup = spec.startup_trials or (max(3, min(10, len(seeds))) if seeds else 10)
    return TPE(sampler=TPESampler(seed=seed, n_startup_trials=startup), seed=seed,
               points_to_evaluate=points or None, evaluated_rewards=[s.score for s in seeds] or None)


def search_algorithm(spec: JobSpec, job_id, seeds: Sequence[SeedTrial] = ()) -> SteeredSearch | SteeredVariants:
    """The job's searcher, steered by its JobRun (service/search/steered_search.py) and seeded with
    its parents' trials: TPE gets them as completed trials, random and grid skip them."""
    searched, seed = tuple(spec.search_space), searcher_seed(spec, job_id)
    if spec.search_algorithm == "tpe":
        return SteeredSearch(job_id, searched, tpe(spec, seed, seeds), seed)
    return SteeredVariants(job_id, searched, [dict(seed.params) for seed in seeds], spec.search_algorithm,
                           random_state=seed)
