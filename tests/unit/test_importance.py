"""Hyperparameter importances (PED-ANOVA) over a job's trials, from the read model's rows."""

from __future__ import annotations

import math
import random

from schemas.job_spec import JobSpec
from service.importance import param_importances
from tests.specs import example_spec

SPEC = JobSpec.model_validate(example_spec(search_space={
    "learning_rate": {"type": "loguniform", "min": 1e-5, "max": 1e-1},
    "batch_size": {"type": "choice", "values": [16, 32]},
    "warmup_steps": {"type": "randint", "min": 0, "max": 20},
    "noise": {"type": "normal", "mean": 0, "sd": 1},
}))


def _trial(i: int, rng: random.Random, **override) -> dict:
    lr = 10 ** rng.uniform(-5, -1)
    params = {"learning_rate": lr, "batch_size": rng.choice([16, 32]), "warmup_steps": rng.randrange(20),
              "noise": rng.gauss(0, 1)}
    score = 100 - 30 * (math.log10(lr) + 2.5) ** 2  # only the learning rate matters
    return {"trial_id": f"t{i}", "status": "completed", "params": params, "metrics": {"score": score}, **override}


def test_the_parameter_the_score_depends_on_is_the_most_important():
    rng = random.Random(0)
    found = param_importances(SPEC, [_trial(i, rng) for i in range(40)])
    assert found.trials_used == 40 and found.note is None
    assert next(iter(found.importances)) == "learning_rate"
    assert found.importances["learning_rate"] > 2 * max(v for k, v in found.importances.items() if k != "learning_rate")
    assert abs(sum(found.importances.values()) - 1) < 1e-3


def test_unusable_trials_are_skipped_and_too_few_give_a_note():
    rng = random.Random(1)
    trials = [_trial(0, rng), _trial(1, rng, status="failed"), _trial(2, rng, metrics={"score": float("nan")}),
              _trial(3, rng, params={"learning_rate": 1e-3}), _trial(4, rng)]
    trials[4]["params"]["learning_rate"] = 0.5  # outside the space (e.g. perturbed by PBT)
    found = param_importances(SPEC, trials)
    assert (found.trials_used, found.trials_skipped) == (1, 4)
    assert found.importances == {} and "at least 3" in found.note
