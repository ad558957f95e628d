"""What a run can be asked for, answered without importing JAX: models and metric names.

The gateway calls this (through training.validate) for every job it accepts, so it stays light.
A model id is one of (each a module of training/sources/, asked in this order):
1. a built-in name (tiny-gemma3), trained from a seed;
2. `ollama:NAME[:TAG]`: a model in Ollama's store (OLLAMA_MODELS / ~/.ollama/models), offline;
3. `lmstudio:PUBLISHER/MODEL/FILE.gguf`: a file in LM Studio's models folder;
4. a `.gguf` file under the models folder (TUNIX_MODELS_DIR): its path relative to it, or its absolute
   path (also inside LM Studio's folder). A GGUF model is converted once into a Hugging Face folder in
   the conversion cache (TUNIX_CONVERTED_MODELS_DIR) when a run starts from it;
5. a Hugging Face-format folder (config.json, *.safetensors, tokenizer files) under the models folder:
   its path relative to it, or its absolute path. An absolute path is also accepted inside the Hugging
   Face cache;
6. a hub id (google/gemma-3-270m, Qwen/Qwen3-0.6B), found offline only, in the Hugging Face cache
   (HF_HUB_CACHE / HF_HOME / ~/.cache/huggingface/hub). Nothing is ever downloaded.
Paths are checked after following symlinks; a path anywhere else is refused in the same words as a
missing one, so the answer says nothing about what exists on the server.
"""

from __future__ import annotations

from pathlib import Path

from training.folders import Folders
from training.hf_checkpoint import HfCheckpoint
from training.model import BUILT_IN_MODELS
from training.sources import AvailableModel, GgufOrigin, ModelNotAvailable, ModelSource, model_sources
from training.sources.folder import model_folder
from training.sources.gguf_file import prepared
from training.sources.sizing import checkpoint_of as _checkpoint_of

__all__ = ["METRIC_NAMES", "EVALUATION_METRICS", "AvailableModel", "GgufOrigin", "ModelNotAvailable", "ModelSource",
           "available_models", "available_in", "checkpoint_of", "model_folder", "prepared", "resolve_in",
           "resolve_model"]

# What a run reports; a job's metric_name must be one of these.
METRIC_NAMES = ("score", "answer_correctness", "exact_match", "contains", "eval_loss", "train_loss")
# The metrics that need a decoding pass over the eval split (the losses come with training).
EVALUATION_METRICS = ("score", "answer_correctness", "exact_match", "contains")


def resolve_model(model_id: str, models_dir: Path, hf_cache: Path | None = None, *, ollama_dir: Path | None = None,
                  lmstudio_dir: Path | None = None, converted_dir: Path | None = None) -> ModelSource:
    """Where the model's weights are; ModelNotAvailable (saying how to provide it) or BrokenCheckpoint
    (a GGUF file that cannot be converted) otherwise. Checked again in every trial, not only when the
    job was created: a trial may run an event that never went through the gateway."""
    for source in model_sources(models_dir, hf_cache, ollama_dir, lmstudio_dir, converted_dir):
        found = source.resolve(model_id)
        if found is not None:
            return found
    cache = f" or, by absolute path, in the Hugging Face cache {hf_cache}" if hf_cache is not None else ""
    raise ModelNotAvailable(
        f"model {model_id!r} is not available offline: it is not built in ({', '.join(BUILT_IN_MODELS)}), "
        f"not a checkpoint folder under $TUNIX_MODELS_DIR ({models_dir}) or a .gguf file there{cache}"
        + (f", and the Hugging Face cache {hf_cache} has no snapshot of it" if hf_cache is not None else "")
        + ". On a machine with network, `hf download " + model_id + "` puts it in the Hugging Face cache "
        "(copy ~/.cache/huggingface/hub here, or point HF_HUB_CACHE at it); or put the folder (config.json, "
        f"*.safetensors, tokenizer files) or the .gguf file at $TUNIX_MODELS_DIR/<name> (now {models_dir}) and "
        "name it by that name or its absolute path; an Ollama model is named ollama:NAME[:TAG]."
    )


def resolve_in(model_id: str, folders: Folders) -> ModelSource:
    """resolve_model with every store a Folders names."""
    return resolve_model(model_id, folders.models, folders.hf_cache, ollama_dir=folders.ollama,
                         lmstudio_dir=folders.lmstudio, converted_dir=folders.converted)


def checkpoint_of(source: ModelSource) -> HfCheckpoint:
    """The checked checkpoint a non-built-in source names (a GGUF file from its header: not converted)."""
    return _checkpoint_of(source)


def available_models(models_dir: Path, hf_cache: Path | None, batch_size: int, seq_len: int, *,
                     ollama_dir: Path | None = None, lmstudio_dir: Path | None = None,
                     converted_dir: Path | None = None) -> list[AvailableModel]:
    """Every source's models, each checked and sized: folders from config.json and the safetensors
    headers, GGUF files from their headers (nothing is loaded, converted or hashed)."""
    found = []
    for source in model_sources(models_dir, hf_cache, ollama_dir, lmstudio_dir, converted_dir):
        found += source.available(batch_size, seq_len)
    return found


def available_in(folders: Folders, batch_size: int, seq_len: int) -> list[AvailableModel]:
    return available_models(folders.models, folders.hf_cache, batch_size, seq_len, ollama_dir=folders.ollama,
                            lmstudio_dir=folders.lmstudio, converted_dir=folders.converted)
