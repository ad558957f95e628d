"""Hyperparameter importances of a job's completed trials, by Optuna's PED-ANOVA.

PED-ANOVA (Watanabe et al., IJCAI 2023) compares where the job's best trials sit in each
parameter's range with where all its trials sit: a parameter whose good values crowd into one
region matters. It fits no surrogate model, so it needs no scikit-learn (Optuna's fANOVA does,
and it is not installed), and it works with the few trials a tuning job of LLM runs has. The
trials are read into an in-memory Optuna study built from the job's own search space.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

from schemas import search_space as ss
from schemas.job_spec import JobSpec

# PED-ANOVA's own floor: with one trial it returns all zeros, and it drops a parameter's regime
# holding fewer than two trials (its _min_n_trials_in_regime), so two is the least it can use.
MIN_TRIALS = 2
# Trials in the top quantile: Optuna advises at least 5; fewer (its default 10% of a small job)
# favours continuous parameters, since one or two top points always look concentrated.
TOP_TRIALS = 10


@dataclass(frozen=True)
class Importances:
    trials_used: int
    trials_skipped: int
    importances: dict[str, float] = field(default_factory=dict)  # most important first; sum ~1
    note: str | None = None
    method: str = "ped-anova"


def _is_multiple(x: float, q: float) -> bool:
    return math.isclose(x / q, round(x / q), rel_tol=1e-9, abs_tol=1e-9)


def distribution(param: ss.ParamSpec, observed: list[float]) -> BaseDistribution:
    """Optuna's view of one searched parameter (`observed`: its finite values in the trials)."""
    match param:
        case ss.Choice(values=values) | ss.Grid(values=values):
            return CategoricalDistribution(values)
        case ss.RandInt(min=lo, max=hi):
            return IntDistribution(int(lo), int(hi) - 1)  # ours excludes max, Optuna's includes it
        case ss.LogUniform(min=lo, max=hi):  # qloguniform too: Optuna refuses a step with log=True
            return FloatDistribution(lo, hi, log=True)
        case ss.QUniform(min=lo, max=hi, q=q) if _is_multiple(lo, q) and _is_multiple(hi, q):
            return FloatDistribution(lo, hi, step=q)  # Ray's multiples of q are then on Optuna's grid
        case ss.Uniform(min=lo, max=hi) | ss.QUniform(min=lo, max=hi):
            return FloatDistribution(lo, hi)
        case ss.Normal():
            # A normal is unbounded, but an Optuna distribution needs bounds, and PED-ANOVA lays its
            # grid over them: the range the trials drew is the region there is evidence about, and
            # holds every observed value (one value only: a single point, importance 0).
            return FloatDistribution(min(observed), max(observed)) if observed else FloatDistribution(0, 0)
    raise TypeError(f"no Optuna distribution for {param!r}")


def _number(value) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _snap(value, dist: BaseDistribution):
    """A float a rounding error past a bound (exp(log(max)) can be) is taken as the bound."""
    if isinstance(dist, FloatDistribution) and (x := _number(value)) is not None:
        tol = 1e-9 * max(abs(dist.low), abs(dist.high), 1e-300)
        if dist.low - tol <= x < dist.low or dist.high < x <= dist.high + tol:
            return min(max(x, dist.low), dist.high)
    return value


def param_importances(spec: JobSpec, trials: list[dict]) -> Importances:
    """Importances of the searched parameters over the completed trials that report a finite
    metric and every searched parameter; the rest, and values outside the space (a PBT
    perturbation, an edited spec), are skipped and counted. Never raises for too few trials."""
    metric, names = spec.metric_name, list(spec.search_space)
    scored = [t for t in trials if t.get("status") == "completed"
              and _number((t.get("metrics") or {}).get(metric)) is not None
              and all(name in (t.get("params") or {}) for name in names)]
    dists = {name: distribution(p, [x for t in scored if (x := _number(t["params"][name])) is not None])
             for name, p in spec.search_space.items()}
    study = optuna.create_study(direction="maximize" if spec.metric_mode == "max" else "minimize")
    for t in scored:
        try:
            study.add_trial(optuna.trial.create_trial(
                params={n: _snap(t["params"][n], dists[n]) for n in names}, distributions=dists,
                value=float(t["metrics"][metric])))
        except (ValueError, TypeError):
            pass  # outside its distribution: counted as skipped
    used = len(study.trials)
    result = {"trials_used": used, "trials_skipped": len(trials) - used}
    if used < MIN_TRIALS:
        return Importances(**result, note=f"{used} usable completed trial(s) with a finite {metric}: "
                                          f"PED-ANOVA needs at least {MIN_TRIALS}")
    if len(names) == 1:
        return Importances(**result, importances={names[0]: 1.0},
                           note="one searched parameter: its importance is 1.0 trivially")
    # The top quantile holds TOP_TRIALS trials where there are enough (10% once there are 100),
    # else the better half; it must stay smaller than the whole (region quantile 1.0).
    quantile = min(0.5, max(0.1, TOP_TRIALS / used))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's "importances will be equal" etc.: said in the note
        raw = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(target_quantile=quantile),
                                    params=names, normalize=False)
    total = sum(raw.values())
    if not total > 0:
        return Importances(**result, note="no parameter separates the best trials from the rest "
                                          "(e.g. every trial scored the same)")
    return Importances(**result, importances={n: round(v / total, 4) for n, v in raw.items()})
