"""Every rule a job spec must pass before its JobCreated is published, in one call.

The spec's own shape (types, bounds, search-space rules) is checked by pydantic when the body
is parsed (schemas/job_spec.py); what depends on this deployment (datasets, models, metrics,
hyperparameter names, what PBT may change) is checked here against the run pipeline.
"""

from __future__ import annotations

from schemas.job_spec import JobSpec
from schemas.search_space import LogUniform, QUniform, RandInt, Uniform
from service.errors import Problem
from training.folders import Folders
from training.validate import validate_job


def validate_spec(spec: JobSpec, folders: Folders) -> list[Problem]:
    """Every problem of the spec, each with its field path; empty when it can run."""
    named = {**{f"search_space.{n}": n for n in spec.search_space},
             **{f"fixed_params.{n}": n for n in spec.fixed_params}}
    perturbed = {f"search_space.{n}": n for n in spec.perturbed_params()}
    given = [(f"fixed_params.{n}", n, v) for n, v in spec.fixed_params.items()]
    given += [(f"search_space.{n}.values", n, v) for n, p in spec.search_space.items() for v in getattr(p, "values", ())]
    given += [(f"search_space.{n}.{end}", n, v) for n, p in spec.search_space.items() for end, v in _ends(p)]
    problems = validate_job(spec.dataset_key, spec.base_model_id, spec.metric_name, named, folders, perturbed,
                            largest_run(spec), given)
    return [Problem(field, rule) for field, rule in problems]


def largest_run(spec: JobSpec) -> dict:
    """The values of the job's most memory-hungry trial, where the spec bounds them: the lowest
    lora_rank (0 is full fine-tuning) and the largest (its adapters), the largest batch_size and
    max_seq_length."""
    found = {}
    for name, pick in (("lora_rank", min), ("batch_size", max), ("max_seq_length", max)):
        param = spec.search_space.get(name)
        values = ([spec.fixed_params[name]] if name in spec.fixed_params
                  else getattr(param, "values", None) or [getattr(param, "min", None), getattr(param, "max", None)])
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numbers:
            found[name] = pick(numbers)
            if name == "lora_rank":  # the adapters' memory grows with the largest
                found["largest_lora_rank"] = max(numbers)
    return found


def _ends(param) -> list[tuple[str, float]]:
    """The least and greatest values a range can draw (randint's max is excluded), each checked
    against the hyperparameter's rule as a fixed value is."""
    if isinstance(param, RandInt):
        return [("min", param.min), ("max", param.max - 1)]
    if isinstance(param, (Uniform, LogUniform, QUniform)):
        return [("min", param.min), ("max", param.max)]
    return []
