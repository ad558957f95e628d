"""Where a run finds its inputs and keeps its compiled programs; the caller decides (the
service's Settings, the CLI, a test), the run pipeline never reads the environment."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from training.jax_setup import DEFAULT_CACHE_DIR


@dataclass(frozen=True)
class Folders:
    datasets: Path = Path("datasets")  # on-disk datasets, <key>/manifest.json
    models: Path = Path("models")  # local checkpoint folders, <model id>/config.json, and .gguf files
    jax_cache: Path = DEFAULT_CACHE_DIR  # JAX's persistent compilation cache
    hf_cache: Path | None = None  # the Hugging Face hub cache hub ids resolve from (offline); None: none
    ollama: Path | None = None  # Ollama's store (manifests/, blobs/) ollama: ids resolve from; None: none
    lmstudio: Path | None = None  # LM Studio's models folder (<publisher>/<model>/*.gguf); None: none
    # GGUF files converted into Hugging Face folders, one per file's SHA-256.
    converted: Path = DEFAULT_CACHE_DIR.parent / "converted-models"

    def resolved(self) -> "Folders":
        """The same folders as absolute paths, valid from any working directory."""
        absolute = lambda p: p.resolve() if p else None  # noqa: E731
        return replace(self, datasets=self.datasets.resolve(), models=self.models.resolve(),
                       jax_cache=self.jax_cache.resolve(), hf_cache=absolute(self.hf_cache),
                       ollama=absolute(self.ollama), lmstudio=absolute(self.lmstudio),
                       converted=self.converted.resolve())
