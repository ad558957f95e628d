"""What a run can be asked for, answered without importing JAX: models and metric names.

The gateway calls this (through training.validate) for every job it accepts, so it stays light.
A model id is one of:
1. a built-in name (tiny-gemma3), trained from a seed;
2. a Hugging Face-format folder (config.json, *.safetensors, tokenizer files) under the models
   folder (TUNIX_MODELS_DIR): its path relative to it, or its absolute path. An absolute path is
   also accepted inside the Hugging Face cache. Both are checked after following symlinks; a path
   anywhere else is refused in the same words as a missing one, so the answer says nothing about
   what exists on the server;
3. a hub id (google/gemma-3-270m, Qwen/Qwen3-0.6B), found offline only, in the Hugging Face cache
   (HF_HUB_CACHE / HF_HOME / ~/.cache/huggingface/hub). Nothing is ever downloaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from training.hf_checkpoint import BrokenCheckpoint, read_checkpoint
from training.memory import MemoryEstimate, estimate
from training.model import BUILT_IN_MODELS
from training.safe_files import within

# What a run reports; a job's metric_name must be one of these.
METRIC_NAMES = ("score", "answer_correctness", "eval_loss", "train_loss")
# The metrics that need a decoding pass over the eval split (the losses come with training).
EVALUATION_METRICS = ("score", "answer_correctness")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")


class ModelNotAvailable(LookupError):
    """Built from the model id and the configured folders only, never from what is on disk
    outside them."""


@dataclass(frozen=True)
class ModelSource:
    model_id: str
    kind: str  # "built-in", "folder" or "hf-cache"
    folder: Path | None = None  # the checkpoint folder (for hf-cache: the snapshot folder)
    revision: str | None = None  # the cache snapshot's commit (hf-cache)


def resolve_model(model_id: str, models_dir: Path, hf_cache: Path | None = None) -> ModelSource:
    """Where the model's weights are; ModelNotAvailable (saying how to provide it) otherwise."""
    if model_id in BUILT_IN_MODELS:
        return ModelSource(model_id, "built-in")
    # Checked again in every trial, not only when the job was created: a trial may run an event
    # that never went through the gateway.
    folder = model_folder(model_id, models_dir, hf_cache)
    if folder is not None:
        return ModelSource(model_id, "folder", folder)
    if _HUB_ID.match(model_id) and hf_cache is not None:
        snapshot = _cached_snapshot(model_id, hf_cache)
        if snapshot is not None:
            return ModelSource(model_id, "hf-cache", snapshot, revision=snapshot.name)
    cache = f" or, by absolute path, in the Hugging Face cache {hf_cache}" if hf_cache is not None else ""
    raise ModelNotAvailable(
        f"model {model_id!r} is not available offline: it is not built in ({', '.join(BUILT_IN_MODELS)}), "
        f"not a checkpoint folder under $TUNIX_MODELS_DIR ({models_dir}){cache}"
        + (f", and the Hugging Face cache {hf_cache} has no snapshot of it" if hf_cache is not None else "")
        + ". On a machine with network, `hf download " + model_id + "` puts it in the Hugging Face cache "
        "(copy ~/.cache/huggingface/hub here, or point HF_HUB_CACHE at it); or put the folder (config.json, "
        f"*.safetensors, tokenizer files) at $TUNIX_MODELS_DIR/<name> (now {models_dir}) and name it by that "
        "name or its absolute path."
    )


def model_folder(model_id: str, models_dir: Path, hf_cache: Path | None) -> Path | None:
    """The checkpoint folder `model_id` names, symlinks resolved: relative to models_dir, or an
    absolute path inside models_dir or hf_cache. None for anything else, existing or not."""
    if not model_id or "\0" in model_id:
        return None
    roots = (models_dir, hf_cache) if Path(model_id).is_absolute() and hf_cache is not None else (models_dir,)
    for root in roots:
        folder = within(model_id, root)  # a relative id is joined to the root; an absolute one stays
        if folder is not None and folder.is_dir():
            return folder
    return None


def _cached_snapshot(repo_id: str, cache: Path) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        # Within the cache once resolved: the snapshot's name comes from a file (refs/main).
        return within(snapshot_download(repo_id, cache_dir=cache, local_files_only=True), cache)
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class AvailableModel:
    """A model this machine can train: where it is, what it is, whether it fits."""

    source: ModelSource
    family: str | None = None
    parameters: int | None = None
    memory: MemoryEstimate | None = None
    problem: str | None = None  # why it cannot be trained (a broken folder), else None


def available_models(models_dir: Path, hf_cache: Path | None, batch_size: int, seq_len: int) -> list[AvailableModel]:
    """Built-in models, checkpoint folders under models_dir (<id>/ or <org>/<name>/) and the
    hub models in the Hugging Face cache, each checked and sized (nothing is loaded)."""
    from training.tokenizer import CharTokenizer

    found = []
    for name, built_in in BUILT_IN_MODELS.items():
        vocab = CharTokenizer().vocab_size
        params = built_in.parameter_count(vocab)
        found.append(AvailableModel(ModelSource(name, "built-in"), "gemma3", params, estimate(
            params, vocab, built_in.embed_dim, built_in.num_layers, batch_size, seq_len)))
    if models_dir.is_dir():
        for config in sorted([*models_dir.glob("*/config.json"), *models_dir.glob("*/*/config.json")]):
            model_id = str(config.parent.relative_to(models_dir))
            folder = model_folder(model_id, models_dir, None)  # a link out of the models folder is not listed
            if folder is not None:
                found.append(_checked(ModelSource(model_id, "folder", folder), batch_size, seq_len))
    for repo_id in _cached_repos(hf_cache):
        snapshot = _cached_snapshot(repo_id, hf_cache)
        if snapshot is not None:
            found.append(_checked(ModelSource(repo_id, "hf-cache", snapshot, snapshot.name), batch_size, seq_len))
    return found


def _checked(source: ModelSource, batch_size: int, seq_len: int) -> AvailableModel:
    try:
        checkpoint = read_checkpoint(source.folder)
    except BrokenCheckpoint as exc:
        return AvailableModel(source, problem=str(exc))
    config = checkpoint.config
    return AvailableModel(source, checkpoint.family, checkpoint.num_parameters, estimate(
        checkpoint.num_parameters, config["vocab_size"], config["hidden_size"], checkpoint.num_layers,
        batch_size, seq_len))


def _cached_repos(hf_cache: Path | None) -> list[str]:
    """Model repos in the cache's layout: models--<org>--<name>/."""
    if hf_cache is None or not hf_cache.is_dir():
        return []
    return sorted(p.name.removeprefix("models--").replace("--", "/", 1) for p in hf_cache.glob("models--*--*"))
