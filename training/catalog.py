"""What a run can be asked for, answered without importing JAX: models and metric names.

The gateway calls this (through training.validate) for every job it accepts, so it stays light.
"""

from __future__ import annotations

from pathlib import Path

from training.model import BUILT_IN_MODELS

# What a run reports; a job's metric_name must be one of these.
METRIC_NAMES = ("score", "answer_correctness", "eval_loss", "train_loss")
# The metrics that need a decoding pass over the eval split (the losses come with training).
EVALUATION_METRICS = ("score", "answer_correctness")
_CHECKPOINT_CONFIG = "config.json"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")


class ModelNotAvailable(LookupError):
    pass


def resolve_model(model_id: str, root: Path) -> tuple[str, Path | None]:
    """("built-in", None) or ("checkpoint", folder); ModelNotAvailable otherwise.

    Nothing is downloaded: a Hub id such as google/gemma-2b-it resolves only from a local
    checkpoint folder, the id as a path or <TUNIX_MODELS_DIR>/<id>."""
    if model_id in BUILT_IN_MODELS:
        return "built-in", None
    for folder in (Path(model_id), root / model_id):
        if folder.is_dir():
            missing = _missing_checkpoint_files(folder)
            if missing:
                raise ModelNotAvailable(
                    f"model {model_id!r}: {folder} is not a complete checkpoint folder "
                    f"(missing {'; '.join(missing)})"
                )
            return "checkpoint", folder.resolve()
    raise ModelNotAvailable(
        f"model {model_id!r} is not available offline: it is not built in "
        f"({', '.join(BUILT_IN_MODELS)}) and there is no checkpoint folder at {root / model_id}. "
        f"To use it, download it on a connected machine and put the checkpoint folder (config.json, "
        f"*.safetensors and tokenizer files) at $TUNIX_MODELS_DIR/{model_id} (now {root}), "
        f"or pass the folder's path as the model id."
    )


def _missing_checkpoint_files(folder: Path) -> list[str]:
    missing = []
    if not (folder / _CHECKPOINT_CONFIG).is_file():
        missing.append(_CHECKPOINT_CONFIG)
    if not any(folder.glob("*.safetensors")):
        missing.append("*.safetensors")
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        missing.append(" or ".join(_TOKENIZER_FILES))
    return missing
