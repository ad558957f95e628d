"""Hyperparameter importances of a job's completed trials, by Optuna's PED-ANOVA.

PED-ANOVA (Watanabe et al.) compares where the top trials sit in each parameter's range with
where all trials sit: a parameter whose good values crowd into one region matters. It needs
no surrogate model, so no scikit-learn (Optuna's fANOVA needs it), and it works with the few
trials a tuning job of LLM runs has. The trials are read into an in-memory Optuna study built
from the job's own search space.
"""

from __future__ import annotations

import math
import warnings

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
from pydantic import BaseModel, ConfigDict

from schemas import search_space as ss
from schemas.job_spec import JobSpec

MIN_TRIALS = 3  # fewer leaves PED-ANOVA no top quantile to compare with the rest


class Importances(BaseModel):
    model_config = ConfigDict(frozen=True)

    method: str = "ped-anova"
    trials_used: int
    trials_skipped: int
    importances: dict[str, float]  # sorted, most important first; they sum to 1
    note: str | None = None


def distribution(param: ss.ParamSpec, observed: list[float]) -> BaseDistribution:
    """Optuna's view of one searched parameter."""
    match param:
        case ss.Choice(values=values) | ss.Grid(values=values):
            return CategoricalDistribution(values)
        case ss.RandInt(min=lo, max=hi):
            return IntDistribution(int(lo), int(hi) - 1)  # ours excludes max, Optuna's includes it
        case ss.LogUniform(min=lo, max=hi) | ss.QLogUniform(min=lo, max=hi):
            return FloatDistribution(lo, hi, log=True)
        case ss.Uniform(min=lo, max=hi) | ss.QUniform(min=lo, max=hi):
            return FloatDistribution(lo, hi)
        case ss.Normal():  # unbounded: the range the trials actually drew
            lo, hi = (min(observed), max(observed)) if observed else (0.0, 1.0)
            return FloatDistribution(lo, hi if hi > lo else lo + 1.0)
    raise TypeError(f"no Optuna distribution for {param!r}")


def param_importances(spec: JobSpec, trials: list[dict]) -> Importances:
    metric, names = spec.metric_name, list(spec.search_space)
    scored = [t for t in trials if t.get("status") == "completed"
              and isinstance(t.get("metrics", {}).get(metric), (int, float)) and math.isfinite(t["metrics"][metric])
              and all(name in t.get("params", {}) for name in names)]
    dists = {name: distribution(p, [t["params"][name] for t in scored if isinstance(t["params"][name], (int, float))])
             for name, p in spec.search_space.items()}
    study = optuna.create_study(direction="maximize" if spec.metric_mode == "max" else "minimize")
    used = 0
    for t in scored:
        try:  # a value outside the space (a PBT perturbation, an edited spec) cannot be placed
            study.add_trial(optuna.trial.create_trial(params={n: t["params"][n] for n in names}, distributions=dists,
                                                      value=float(t["metrics"][metric])))
            used += 1
        except ValueError:
            pass
    skipped = len(trials) - used
    if used < MIN_TRIALS:
        return Importances(trials_used=used, trials_skipped=skipped, importances={},
                           note=f"{used} completed trial(s) with {metric}: importances need at least {MIN_TRIALS}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "importances will be equal": said in the note instead
        found = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(), normalize=True)
    note = ("one searched parameter: it explains everything there is to explain" if len(names) == 1
            else None if any(found.values()) else "no parameter separates the best trials from the rest")
    return Importances(trials_used=used, trials_skipped=skipped, note=note,
                       importances={name: round(value, 4) for name, value in found.items()})
