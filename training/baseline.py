"""The untuned base model scored once per job, on the same eval split and with the same metrics a
trial reports: the job's baseline, against which every trial's gain is measured.

A built-in model starts from random weights, so it has no baseline: `has_baseline` says which
models get one. The baseline folder holds manifest.json (metrics, model lineage, dataset hash) and
predictions.jsonl, like a run folder without a checkpoint.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path

from training.artifacts import RunFolder, package_versions
from training.base_model import load_base
from training.catalog import resolve_in
from training.datasets import load_dataset
from training.folders import Folders
from training.hyperparams import Hyperparameters


@dataclass(frozen=True)
class Baseline:
    metrics: dict[str, float]
    model: dict  # the base model's lineage
    dataset: dict  # key, content_hash, eval_size
    seconds: float


def has_baseline(model_id: str, folders: Folders) -> bool:
    """Whether the model has pretrained weights to score (everything but the built-in models)."""
    return resolve_in(model_id, folders).kind != "built-in"


def evaluate_baseline(dataset_key: str, model_id: str, *, folders: Folders, out_dir: Path,
                      max_seq_length: int = Hyperparameters.max_seq_length) -> Baseline:
    """Score the base model, untrained, on the dataset's eval split: the trial metrics plus the
    teacher-forced eval_loss at `max_seq_length` (the trials' own, when the job fixes it)."""
    started = time.perf_counter()
    source = resolve_in(model_id, folders)
    dataset = load_dataset(dataset_key, folders.datasets)
    if not dataset.eval:
        raise ValueError(f"dataset {dataset_key!r} has no eval split to score the base model on")

    from training.evaluate import evaluate
    from training.jax_setup import configure_jax
    from training.train import teacher_forced_loss

    configure_jax(folders.jax_cache)
    base = load_base(source, seed=0)
    scores, predictions = evaluate(base.model, base.tokenizer, dataset.eval)
    metrics = {**scores, "eval_loss": teacher_forced_loss(base.model, base.tokenizer, dataset.eval, max_seq_length)}
    described = {"key": dataset.key, "content_hash": dataset.content_hash, "eval_size": len(dataset.eval)}
    seconds = time.perf_counter() - started
    folder = RunFolder(out_dir)
    try:
        folder.write_predictions(predictions)
        folder.write_manifest({
            "kind": "baseline", "dataset": described, "model": base.lineage, "metrics": metrics,
            "max_seq_length": max_seq_length, "packages": package_versions(),
            "timings": {"total_s": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024},
        })
    finally:
        folder.close()
    return Baseline(metrics=metrics, model=base.lineage, dataset=described, seconds=seconds)
