"""Checks a job against what the run pipeline can do, before anything is published.

Returns (field, rule) pairs, the gateway's 422 format; an empty list means the job can run.
"""

from __future__ import annotations

from training.catalog import METRIC_NAMES, ModelNotAvailable, resolve_model
from training.datasets import available_datasets, dataset_exists
from training.folders import Folders
from training.hf_checkpoint import BrokenCheckpoint, read_checkpoint
from training.hyperparams import CHANGEABLE_ON_RESUME, Hyperparameters


def validate_job(
    dataset_key: str, base_model_id: str, metric_name: str, hyperparameters: dict[str, str],
    folders: Folders, perturbed: dict[str, str] | None = None,
) -> list[tuple[str, str]]:
    """`hyperparameters` maps where each name was given (e.g. "search_space.lr") to the name;
    `perturbed` likewise the hyperparameters a PBT scheduler will change mid-run."""
    problems = []
    if not dataset_exists(dataset_key, folders.datasets):
        available = ", ".join(available_datasets(folders.datasets))
        problems.append(("dataset_key", f"unknown dataset {dataset_key!r}; available: {available}"))
    try:
        source = resolve_model(base_model_id, folders.models, folders.hf_cache)
        if source.folder is not None:
            read_checkpoint(source.folder)
            problems.append(("base_model_id", f"{source.folder} is a checkpoint folder, but training from "
                             "checkpoints is not supported by this build yet; use a built-in model"))
    except (ModelNotAvailable, BrokenCheckpoint) as exc:
        problems.append(("base_model_id", str(exc)))
    if metric_name not in METRIC_NAMES:
        problems.append(("metric_name", f"unknown metric {metric_name!r}; available: {', '.join(METRIC_NAMES)}"))
    known = Hyperparameters.names()
    for field, name in hyperparameters.items():
        if name not in known:
            problems.append((field, f"unknown hyperparameter {name!r}; known: {', '.join(known)}"))
    for field, name in (perturbed or {}).items():
        if name in known and name not in CHANGEABLE_ON_RESUME:
            problems.append((field, f"PBT cannot change {name!r} in a running trial (it continues from another "
                             f"trial's checkpoint); PBT searches {', '.join(CHANGEABLE_ON_RESUME)}; "
                             f"give {name} as a grid or in fixed_params"))
    return problems
