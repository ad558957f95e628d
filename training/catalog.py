"""What a run can be asked for, answered without importing JAX: model ids, metric names.

The gateway calls this (through training.validate) for every job it accepts, so it stays
light; training.model builds what these names stand for.
"""

from __future__ import annotations

import os
from pathlib import Path

# Built-in tiny configs of Tunix model families, trained from random init (the CPU default).
BUILT_IN_MODELS = ("tiny-gemma3",)
# What a run reports; a job's metric_name must be one of these.
METRIC_NAMES = ("score", "answer_correctness", "eval_loss", "train_loss")
# Files that make a folder a local checkpoint Tunix's loaders can read.
_CHECKPOINT_FILES = ("config.json",)


class ModelNotAvailable(LookupError):
    pass


def models_dir() -> Path:
    return Path(os.environ.get("TUNIX_MODELS_DIR", "models"))


def resolve_model(model_id: str, root: Path | None = None) -> tuple[str, Path | None]:
    """("built-in", None) or ("checkpoint", folder); ModelNotAvailable otherwise.

    A Hub id such as google/gemma-2b-it resolves only from a local folder: nothing is
    downloaded at run time."""
    if model_id in BUILT_IN_MODELS:
        return "built-in", None
    for folder in (Path(model_id), (root or models_dir()) / model_id):
        if folder.is_dir() and all((folder / f).is_file() for f in _CHECKPOINT_FILES) and any(
            folder.glob("*.safetensors")
        ):
            return "checkpoint", folder.resolve()
    raise ModelNotAvailable(
        f"model {model_id!r} is not available offline: use a built-in model "
        f"({', '.join(BUILT_IN_MODELS)}) or put a local checkpoint (config.json, *.safetensors "
        f"and tokenizer files) in {(root or models_dir()) / model_id} (TUNIX_MODELS_DIR) or pass its path"
    )
