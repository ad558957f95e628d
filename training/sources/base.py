"""What every model source answers: a model id resolved to a ModelSource (a local Hugging Face folder,
or a GGUF file that becomes one, plus its lineage facts), and the models it can list.

A source returns None from resolve() for an id that is not its kind (the catalog asks the next one),
and raises ModelNotAvailable or BrokenCheckpoint for one that is but cannot be used. What it says is
built from the id and the configured folders only: a path outside them gets the catalog's generic
answer, the same as a path that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from training.memory import MemoryEstimate


class ModelNotAvailable(LookupError):
    """Built from the model id and the configured folders only, never from what is on disk
    outside them."""


@dataclass(frozen=True)
class GgufOrigin:
    """The GGUF file a converted folder comes from."""

    path: Path  # the file (an Ollama blob, an LM Studio file, a file under the models folder)
    quantization: str  # e.g. Q4_1, Q4_K_M (general.file_type)
    cache_dir: Path | None  # where it is converted (Folders.converted); None: not configured
    sha256: str | None = None  # the content's hash: known up front for an Ollama blob, else once converted
    cache_entry: Path | None = None  # the converted folder, once converted


@dataclass(frozen=True)
class ModelSource:
    model_id: str
    kind: str  # "built-in", "folder", "hf-cache", "gguf", "ollama" or "lmstudio"
    folder: Path | None = None  # the checkpoint folder (hf-cache: the snapshot; GGUF: the cache entry once converted)
    revision: str | None = None  # the cache snapshot's commit (hf-cache), the Ollama tag's manifest digest
    gguf: GgufOrigin | None = None


@dataclass(frozen=True)
class AvailableModel:
    """A model this machine can train: where it is, what it is, whether it fits."""

    source: ModelSource
    family: str | None = None
    parameters: int | None = None
    memory: MemoryEstimate | None = None
    problem: str | None = None  # why it cannot be trained (a broken folder or file), else None
    quantization: str | None = None  # how a GGUF file stores its weights


class Source(Protocol):
    kind: str

    def resolve(self, model_id: str) -> ModelSource | None:
        """The model `model_id` names, None when the id is not this source's kind."""

    def available(self, batch_size: int, seq_len: int) -> list[AvailableModel]:
        """What this source holds, each checked and sized (nothing loaded, nothing converted)."""
