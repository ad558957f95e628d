"""Where a run finds its inputs and keeps its compiled programs; the caller decides (the
service's Settings, the CLI, a test), the run pipeline never reads the environment."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from training.jax_setup import DEFAULT_CACHE_DIR


@dataclass(frozen=True)
class Folders:
    datasets: Path = Path("datasets")  # on-disk datasets, <key>/manifest.json
    models: Path = Path("models")  # local checkpoint folders, <model id>/config.json
    jax_cache: Path = DEFAULT_CACHE_DIR  # JAX's persistent compilation cache
    hf_cache: Path | None = None  # the Hugging Face hub cache hub ids resolve from (offline); None: none

    def resolved(self) -> "Folders":
        """The same folders as absolute paths, valid from any working directory."""
        return replace(self, datasets=self.datasets.resolve(), models=self.models.resolve(),
                       jax_cache=self.jax_cache.resolve(), hf_cache=self.hf_cache.resolve() if self.hf_cache else None)
