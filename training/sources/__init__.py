"""Where a model id can point: one module per source, each behind the interface in base.py
(resolve an id, list what is there). training/catalog.py asks them in order; adding a source is one
module here and one line below."""

from __future__ import annotations

from pathlib import Path

from training.sources.base import AvailableModel, GgufOrigin, ModelNotAvailable, ModelSource, Source
from training.sources.builtin import BuiltIn
from training.sources.folder import CheckpointFolders
from training.sources.gguf_file import GgufFiles
from training.sources.hf_cache import HfCache
from training.sources.lmstudio import LmStudio
from training.sources.ollama import OllamaStore

__all__ = ["AvailableModel", "GgufOrigin", "ModelNotAvailable", "ModelSource", "Source", "model_sources"]


def model_sources(models_dir: Path, hf_cache: Path | None = None, ollama_dir: Path | None = None,
                  lmstudio_dir: Path | None = None, converted_dir: Path | None = None) -> list[Source]:
    """Every source, in the order an id is tried: the prefixed and named kinds before paths and hub ids."""
    return [BuiltIn(), OllamaStore(ollama_dir, converted_dir), LmStudio(lmstudio_dir, converted_dir),
            GgufFiles(models_dir, lmstudio_dir, converted_dir), CheckpointFolders(models_dir, hf_cache),
            HfCache(hf_cache)]
