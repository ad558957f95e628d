"""LM Studio's downloaded models, `lmstudio:PUBLISHER/MODEL/FILE.gguf`: files under its models folder
(~/.lmstudio/models/<publisher>/<model>/*.gguf; Folders.lmstudio). An absolute path inside that folder
is accepted too (training/sources/gguf_file.py). Vision projectors (mmproj-*.gguf) are not models and
are not listed."""

from __future__ import annotations

import re
from pathlib import Path

from training.safe_files import is_regular_file, within
from training.sources.base import AvailableModel, ModelNotAvailable, ModelSource
from training.sources.gguf_file import gguf_source, listed

PREFIX = "lmstudio:"
_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_REF = re.compile(rf"^{_PART}/{_PART}/{_PART}\.gguf$")


class LmStudio:
    kind = "lmstudio"

    def __init__(self, store: Path | None, cache_dir: Path | None):
        self.store, self.cache_dir = store, cache_dir

    def resolve(self, model_id: str) -> ModelSource | None:
        if not model_id.startswith(PREFIX):
            return None
        ref = model_id.removeprefix(PREFIX)
        if not _REF.match(ref) or ".." in ref:
            raise ModelNotAvailable(f"model {model_id!r}: an LM Studio model id must be lmstudio:PUBLISHER/MODEL/"
                                    "FILE.gguf, each part letters, digits, '.', '_' or '-' (no '..')")
        path = within(ref, self.store) if self.store is not None else None
        if path is None or not is_regular_file(path):
            raise ModelNotAvailable(f"model {model_id!r} is not in LM Studio's models folder ({self.store})")
        return gguf_source(model_id, self.kind, path, self.cache_dir)

    def available(self, batch_size: int, seq_len: int) -> list[AvailableModel]:
        if self.store is None or not self.store.is_dir():
            return []
        found = []
        for path in sorted(self.store.glob("*/*/*.gguf")):
            ref = str(path.relative_to(self.store))
            if path.name.startswith("mmproj") or not _REF.match(ref):
                continue
            real = within(ref, self.store)  # a link out of the store is not listed
            if real is not None and is_regular_file(real):
                found.append(listed(PREFIX + ref, self.kind, real, self.cache_dir, batch_size, seq_len))
        return found
