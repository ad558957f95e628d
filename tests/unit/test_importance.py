"""Hyperparameter importances (PED-ANOVA) over a job's trials, from the read model's rows."""

from __future__ import annotations

import math
import random

from schemas.job_spec import JobSpec
from service.audit.importance import MIN_TRIALS, param_importances
from tests.support.specs import example_spec

SPEC = JobSpec.model_validate(example_spec(search_space={
    "learning_rate": {"type": "loguniform", "min": 1e-5, "max": 1e-1},
    "batch_size": {"type": "choice", "values": [16, 32]},
}))


def _trial(i: int, rng: random.Random, **override) -> dict:
    lr = 10 ** rng.uniform(-5, -1)
    params = {"learning_rate": lr, "batch_size": rng.choice([16, 32])}
    score = 100 - 30 * (math.log10(lr) + 2.5) ** 2  # only the learning rate matters
    return {"trial_id": f"t{i}", "status": "completed", "params": params, "metrics": {"score": score}, **override}


def test_the_parameter_the_score_depends_on_is_the_most_important():
    rng = random.Random(0)
    found = param_importances(SPEC, [_trial(i, rng) for i in range(30)])
    assert (found.method, found.trials_used, found.trials_skipped, found.note) == ("ped-anova", 30, 0, None)
    assert list(found.importances) == ["learning_rate", "batch_size"]  # most important first
    assert found.importances["learning_rate"] > 3 * found.importances["batch_size"]
    assert abs(sum(found.importances.values()) - 1) < 1e-3


def test_too_few_trials_give_no_importances_and_say_why():
    found = param_importances(SPEC, [_trial(0, random.Random(2))])
    assert (found.trials_used, found.trials_skipped, found.importances) == (1, 0, {})
    assert f"at least {MIN_TRIALS}" in found.note
    assert param_importances(SPEC, []).importances == {}
    same = [_trial(i, random.Random(i)) | {"metrics": {"score": 1.0}} for i in range(10)]
    found = param_importances(SPEC, same)
    assert (found.trials_used, found.importances) == (10, {}) and "scored the same" in found.note


def test_unusable_trials_are_skipped_and_counted():
    rng = random.Random(1)
    good = [_trial(i, rng) for i in range(10)]
    good[0]["params"]["learning_rate"] = 0.10000000000000002  # max, give or take a rounding error: kept
    outside = _trial(10, rng)
    outside["params"]["learning_rate"] = 0.5  # outside the space (e.g. perturbed by PBT)
    bad = [_trial(11, rng, status="failed"), _trial(12, rng, status="running"),
           _trial(13, rng, metrics={"score": float("nan")}), _trial(14, rng, metrics={"score": float("inf")}),
           _trial(15, rng, metrics={"loss": 1.0}), _trial(16, rng, params={"learning_rate": 1e-3}),
           _trial(17, rng, params={"learning_rate": 1e-3, "batch_size": 64}), outside]
    found = param_importances(SPEC, good + bad)
    assert (found.trials_used, found.trials_skipped) == (10, 8)
    assert set(found.importances) == {"learning_rate", "batch_size"} and found.note is None


def test_randint_normal_and_quantized_parameters_are_accepted():
    spec = JobSpec.model_validate(example_spec(metric_mode="min", search_space={
        "warmup_steps": {"type": "randint", "min": 0, "max": 20},
        "noise": {"type": "normal", "mean": 0, "sd": 1},
        "dropout": {"type": "quniform", "min": 0, "max": 0.5, "q": 0.1},
        "weight_decay": {"type": "qloguniform", "min": 1e-4, "max": 1e-1, "q": 1e-4},
    }))
    rng = random.Random(3)
    trials = []
    for i in range(30):
        params = {"warmup_steps": rng.randrange(20), "noise": rng.gauss(0, 1),
                  "dropout": round(rng.uniform(0, 0.5) / 0.1) * 0.1, "weight_decay": 10 ** rng.uniform(-4, -1)}
        loss = abs(params["warmup_steps"] - 15) + rng.random()  # the warmup matters
        trials.append({"trial_id": f"t{i}", "status": "completed", "params": params, "metrics": {"score": loss}})
    trials[0]["params"]["warmup_steps"] = 20  # randint excludes its max
    found = param_importances(spec, trials)
    assert (found.trials_used, found.trials_skipped) == (29, 1)
    assert set(found.importances) == {"warmup_steps", "noise", "dropout", "weight_decay"}
    assert next(iter(found.importances)) == "warmup_steps"


def test_a_single_parameter_is_trivially_all_important():
    spec = JobSpec.model_validate(example_spec(search_space={"lr": {"type": "uniform", "min": 0, "max": 1}}))
    trials = [{"trial_id": str(i), "status": "completed", "params": {"lr": i / 10}, "metrics": {"score": i}}
              for i in range(5)]
    found = param_importances(spec, trials)
    assert found.importances == {"lr": 1.0} and "trivially" in found.note
