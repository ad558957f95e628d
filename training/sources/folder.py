"""Hugging Face checkpoint folders under the models folder (TUNIX_MODELS_DIR), by name or absolute
path; an absolute path is also accepted inside the Hugging Face cache. Both are checked after
following symlinks."""

from __future__ import annotations

from pathlib import Path

from training.safe_files import within
from training.sources.base import AvailableModel, ModelSource
from training.sources.sizing import sized


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


class CheckpointFolders:
    kind = "folder"

    def __init__(self, models_dir: Path, hf_cache: Path | None):
        self.models_dir, self.hf_cache = models_dir, hf_cache

    def resolve(self, model_id: str) -> ModelSource | None:
        folder = model_folder(model_id, self.models_dir, self.hf_cache)
        return ModelSource(model_id, self.kind, folder) if folder is not None else None

    def available(self, batch_size: int, seq_len: int) -> list[AvailableModel]:
        """<id>/ or <org>/<name>/ with a config.json; a link out of the models folder is not listed."""
        if not self.models_dir.is_dir():
            return []
        found = []
        for config in sorted([*self.models_dir.glob("*/config.json"), *self.models_dir.glob("*/*/config.json")]):
            model_id = str(config.parent.relative_to(self.models_dir))
            folder = model_folder(model_id, self.models_dir, None)
            if folder is not None:
                found.append(sized(ModelSource(model_id, self.kind, folder), batch_size, seq_len))
        return found
