"""Checks a job against what the run pipeline can do, before anything is published.

Returns (field, rule) pairs, the gateway's 422 format; an empty list means the job can run.
"""

from __future__ import annotations

from collections.abc import Callable

from training.catalog import METRIC_NAMES, ModelNotAvailable, checkpoint_of, resolve_in
from training.datasets import available_datasets, dataset_exists
from training.folders import Folders
from training.hf_checkpoint import BrokenCheckpoint
from training.hyperparams import CHANGEABLE_ON_RESUME, PRETRAINED_LORA_RANK, Hyperparameters
from training.memory import FIT_FRACTION, estimate, gib


def validate_job(
    dataset_key: str, base_model_id: str, metric_name: str, hyperparameters: dict[str, str],
    folders: Folders, perturbed: dict[str, str] | None = None, largest_run: dict | None = None,
    given_values: list[tuple[str, str, object]] = (),
) -> list[tuple[str, str]]:
    """`hyperparameters` maps where each name was given (e.g. "search_space.lr") to the name;
    `perturbed` likewise the hyperparameters a PBT scheduler will change mid-run; `largest_run`
    the values of the most memory-hungry trial the job allows (lowest lora_rank, largest
    batch_size and max_seq_length), checked against this machine's memory; `given_values`
    (field, name, value) every value the job names outright (fixed, choice and grid values),
    each checked against the hyperparameter's rule."""
    problems = []
    if not dataset_exists(dataset_key, folders.datasets):
        available = ", ".join(available_datasets(folders.datasets))
        problems.append(("dataset_key", f"unknown dataset {dataset_key!r}; available: {available}"))
    try:
        source = resolve_in(base_model_id, folders)
        if source.kind != "built-in":  # a GGUF file is checked from its header: converting it is a trial's work
            problems += _memory_problems(checkpoint_of(source), largest_run or {})
    except (ModelNotAvailable, BrokenCheckpoint) as exc:
        problems.append(("base_model_id", str(exc)))
    if metric_name not in METRIC_NAMES:
        problems.append(("metric_name", f"unknown metric {metric_name!r}; available: {', '.join(METRIC_NAMES)}"))
    known = Hyperparameters.names()
    for field, name in hyperparameters.items():
        if name not in known:
            problems.append((field, f"unknown hyperparameter {name!r}; known: {', '.join(known)}"))
    for field, name, value in given_values:
        if name in known:
            try:
                Hyperparameters.from_mapping({name: value})
            except ValueError as exc:
                problems.append((field, f"{name}={value!r}: {exc}"))
    for field, name in (perturbed or {}).items():
        if name in known and name not in CHANGEABLE_ON_RESUME:
            problems.append((field, f"PBT cannot change {name!r} in a running trial (it continues from another "
                             f"trial's checkpoint); PBT searches {', '.join(CHANGEABLE_ON_RESUME)}; "
                             f"give {name} as a grid or in fixed_params"))
    return problems


def _memory_problems(checkpoint, largest_run: dict) -> list[tuple[str, str]]:
    """Refused up front when the largest trial clearly will not fit (training/memory.py): the
    lowest lora_rank says full fine-tuning or LoRA, the largest sizes the adapters."""
    defaults = Hyperparameters()
    run = {"lora_rank": PRETRAINED_LORA_RANK, "batch_size": defaults.batch_size,
           "max_seq_length": defaults.max_seq_length, **largest_run}
    need = _estimate(checkpoint, int(run["batch_size"]), int(run["max_seq_length"]),
                     int(run.get("largest_lora_rank", run["lora_rank"])))
    full = run["lora_rank"] <= 0
    size = need.full_bytes if full else need.lora_bytes
    if size <= FIT_FRACTION * need.machine_bytes:
        return []
    how = "full fine-tuning" if full else f"LoRA (rank {run['lora_rank']})"
    return [("base_model_id", f"{how} of {checkpoint.folder} ({checkpoint.num_parameters:,} parameters) at batch_size "
             f"{run['batch_size']} and max_seq_length {run['max_seq_length']} needs about {gib(size)}, more than "
             f"{FIT_FRACTION:.0%} of this machine's {gib(need.machine_bytes)} (estimate: training/memory.py); "
             + ("use LoRA (lora_rank > 0), " if full else "") + "lower batch_size or max_seq_length")]


def pack_fits(source) -> Callable[[int, int, int, int], bool]:
    """`fits(slots, lora_rank, batch_size, seq_len)`: whether a pack of `slots` LoRA trials of the
    model `source` names fits this machine's memory (training/memory.py). The checkpoint's config
    (or GGUF header) is read once, here; the built-in model is small enough for any pack."""
    if source.kind == "built-in":
        return lambda slots, lora_rank, batch_size, seq_len: True
    checkpoint = checkpoint_of(source)
    return lambda slots, lora_rank, batch_size, seq_len: _estimate(
        checkpoint, batch_size, seq_len, lora_rank, slots).fits_lora


def _estimate(checkpoint, batch_size: int, seq_len: int, lora_rank: int, slots: int = 1):
    config = checkpoint.config
    return estimate(checkpoint.num_parameters, config["vocab_size"], config["hidden_size"], checkpoint.num_layers,
                    batch_size, seq_len, lora_rank=lora_rank, slots=slots)
