"""Hub ids (google/gemma-3-270m, Qwen/Qwen3-0.6B) found offline only, in the Hugging Face cache
(HF_HUB_CACHE / HF_HOME / ~/.cache/huggingface/hub). Nothing is ever downloaded."""

from __future__ import annotations

import re
from pathlib import Path

from training.safe_files import within
from training.sources.base import AvailableModel, ModelSource
from training.sources.sizing import sized

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")


def cached_snapshot(repo_id: str, cache: Path) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        # Within the cache once resolved: the snapshot's name comes from a file (refs/main).
        return within(snapshot_download(repo_id, cache_dir=cache, local_files_only=True), cache)
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


class HfCache:
    kind = "hf-cache"

    def __init__(self, hf_cache: Path | None):
        self.hf_cache = hf_cache

    def resolve(self, model_id: str) -> ModelSource | None:
        if self.hf_cache is None or not HUB_ID.match(model_id):
            return None
        snapshot = cached_snapshot(model_id, self.hf_cache)
        return ModelSource(model_id, self.kind, snapshot, revision=snapshot.name) if snapshot is not None else None

    def available(self, batch_size: int, seq_len: int) -> list[AvailableModel]:
        found = []
        for repo_id in self._repos():
            snapshot = cached_snapshot(repo_id, self.hf_cache)
            if snapshot is not None:
                found.append(sized(ModelSource(repo_id, self.kind, snapshot, snapshot.name), batch_size, seq_len))
        return found

    def _repos(self) -> list[str]:
        """Model repos in the cache's layout: models--<org>--<name>/."""
        if self.hf_cache is None or not self.hf_cache.is_dir():
            return []
        return sorted(p.name.removeprefix("models--").replace("--", "/", 1) for p in self.hf_cache.glob("models--*--*"))
