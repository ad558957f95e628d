"""Evaluate a saved run folder again: the model a run left behind, scored on its dataset's eval split.

A promoted model (artifacts/models/<name>/<version>/, a copy of its run folder) or any run folder
should give the score its manifest records. `evaluate_saved` rebuilds the model from the folder it
is given, never from the absolute paths in the manifest (the folder may have been copied), and
runs the same `evaluate` the run did:

- a built-in model: checkpoint/ (Orbax) loaded into the built-in architecture (training.checkpoint);
- a LoRA run on a Hugging Face checkpoint: merged/, a full Hugging Face folder, loaded as a local
  model folder like any other (training.catalog.resolve_model + training.base_model.load_base);
- a Hugging Face run without merged/ (a full fine-tune, or a family tunix has no merged exporter
  for): checkpoint/ holds the merged weights, restored onto the base checkpoint's architecture,
  which must then still be available (its folder, the models folder or the Hugging Face cache).

Nothing is written into the run folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.folders import Folders

# Scores are computed the same way from the same weights; anything beyond float noise is a change.
SCORE_TOLERANCE = 1e-6


class SavedRunError(ValueError):
    """The folder is not a run folder that can be evaluated again; the message says what is missing."""


def read_run_manifest(run_folder: Path) -> dict:
    """The run folder's manifest, checked for what evaluate_saved needs; SavedRunError otherwise."""
    run_folder = Path(run_folder)
    if not run_folder.is_dir():
        raise SavedRunError(f"{run_folder}: no such run folder")
    path = run_folder / "manifest.json"
    if not path.is_file():
        raise SavedRunError(f"{run_folder}: not a finished run folder, it has no manifest.json "
                            "(a run writes it after its final evaluation)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SavedRunError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise SavedRunError(f"{path}: must be a JSON object")
    dataset, model = manifest.get("dataset"), manifest.get("model")
    if not isinstance(dataset, dict) or not dataset.get("key"):
        raise SavedRunError(f"{path}: names no dataset (dataset.key)")
    if not isinstance(model, dict) or not model.get("source") or not model.get("id"):
        raise SavedRunError(f"{path}: names no model (model.id and model.source)")
    return manifest


def evaluate_saved(run_folder: Path, folders: Folders) -> dict:
    """Score the run folder's model on its manifest's dataset eval split, as run_pipeline did.

    Returns run_pipeline's evaluation metrics (score, answer_correctness) plus what was compared:
    recorded_score and matches_recorded (within SCORE_TOLERANCE), dataset (key), dataset_changed
    (its content hash differs from the manifest's: the dataset was edited since the run),
    content_hash / recorded_content_hash, eval_size, predictions_changed (how many predictions
    differ from the folder's predictions.jsonl; None without one), weights ("checkpoint" or
    "merged") and weights_path. SavedRunError when the folder cannot be evaluated; UnknownDataset
    or MalformedDataset when its dataset is gone or broken.
    """
    from training.datasets import load_dataset

    run_folder = Path(run_folder)
    manifest = read_run_manifest(run_folder)
    recorded = manifest.get("metrics") or {}
    dataset = load_dataset(manifest["dataset"]["key"], folders.datasets)
    recorded_hash = manifest["dataset"].get("content_hash")

    # JAX and Tunix load here, not at import (as in run_pipeline).
    from training.evaluate import evaluate
    from training.jax_setup import configure_jax

    configure_jax(folders.jax_cache)
    model, tokenizer, weights, weights_path = load_saved_model(run_folder, manifest, folders)
    scores, predictions = evaluate(model, tokenizer, dataset.eval)
    recorded_score = recorded.get("score")
    return {
        **scores,
        "recorded_score": recorded_score,
        "matches_recorded": recorded_score is not None and abs(scores["score"] - recorded_score) <= SCORE_TOLERANCE,
        "dataset": dataset.key,
        "dataset_changed": dataset.content_hash != recorded_hash,
        "content_hash": dataset.content_hash,
        "recorded_content_hash": recorded_hash,
        "eval_size": len(dataset.eval),
        "predictions_changed": _predictions_changed(run_folder, predictions),
        "model_id": manifest["model"]["id"],
        "weights": weights,
        "weights_path": str(weights_path),
    }


def load_saved_model(run_folder: Path, manifest: dict, folders: Folders):
    """(model, tokenizer, "checkpoint" | "merged", path of the weights) from the folder's own files."""
    lineage = manifest["model"]
    checkpoint_dir = run_folder / "checkpoint"
    has_checkpoint = checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir())
    if lineage["source"] == "built-in":
        from training import checkpoint
        from training.tokenizer import CharTokenizer

        if not has_checkpoint:
            raise SavedRunError(f"{run_folder}: the built-in model {lineage['id']!r} has no checkpoint/ to load "
                                f"(expected an Orbax checkpoint at {checkpoint_dir})")
        tokenizer = CharTokenizer()
        vocab_size = lineage.get("vocab_size", tokenizer.vocab_size)
        if vocab_size != tokenizer.vocab_size:
            raise SavedRunError(f"{run_folder}: trained with a {vocab_size}-token character vocabulary; "
                                f"this code's has {tokenizer.vocab_size}")
        return checkpoint.load(lineage["id"], vocab_size, checkpoint_dir), tokenizer, "checkpoint", checkpoint_dir

    from training.base_model import load_base
    from training.catalog import ModelNotAvailable, ModelSource, resolve_in

    merged = run_folder / "merged"
    if (merged / "config.json").is_file():
        # A full Hugging Face folder, loaded as a model folder is. The run folder is the caller's
        # choice (the CLI's user), not a job's model id, so it need not be under the models folder.
        source = ModelSource(str(merged.resolve()), "folder", merged.resolve())
        base = load_base(source, manifest.get("seed", 0))
        return base.model, base.tokenizer, "merged", merged
    if not has_checkpoint:
        note = (manifest.get("exports") or {}).get("merged_note")
        raise SavedRunError(f"{run_folder}: nothing to load for the Hugging Face model {lineage['id']!r}: "
                            f"no merged/ export (a Hugging Face folder with config.json)"
                            + (f" ({note})" if note else "") + f" and no checkpoint/ at {checkpoint_dir}")
    # checkpoint/ holds parameters only: the architecture (and tokenizer) come from the base checkpoint.
    try:
        source = resolve_in(lineage.get("folder") or lineage["id"], folders)
    except ModelNotAvailable:
        try:
            source = resolve_in(lineage["id"], folders)
        except ModelNotAvailable as exc:
            raise SavedRunError(f"{run_folder}: no merged/ export, and checkpoint/ needs the base model "
                                f"{lineage['id']!r} for its architecture and tokenizer, which is not available: "
                                f"{exc}") from None
    from training.checkpoint import restore_into

    base = load_base(source, manifest.get("seed", 0))
    restore_into(base.model, checkpoint_dir)
    return base.model, base.tokenizer, "checkpoint", checkpoint_dir


def _predictions_changed(run_folder: Path, predictions: list[dict]) -> int | None:
    path = run_folder / "predictions.jsonl"
    if not path.is_file():
        return None
    try:
        saved = {row["trace_id"]: row.get("prediction") for row in map(json.loads, path.read_text().splitlines())}
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
    return sum(saved.get(p["trace_id"]) != p["prediction"] for p in predictions)
