"""GGUF files by path: `<name>.gguf` relative to the models folder, or an absolute path inside it (or
inside LM Studio's models folder). Checked after following symlinks and read only as regular files:
a path anywhere else gets the catalog's generic answer, the same as a missing one.

A GGUF source has no folder until a run converts it (prepared()): the gateway checks it from its
header alone (gguf_checkpoint), in the same terms as a checkpoint folder.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from training.gguf.config import hf_config
from training.gguf.header import BrokenGguf, read_header
from training.gguf.tensors import plan
from training.hf_checkpoint import HfCheckpoint
from training.hf_config import family_of, unsupported
from training.safe_files import is_regular_file, within
from training.sources.base import AvailableModel, GgufOrigin, ModelNotAvailable, ModelSource
from training.sources.sizing import sized


def gguf_checkpoint(path: Path) -> HfCheckpoint:
    """The model a GGUF file holds, checked like a checkpoint folder (BrokenGguf naming the problem)."""
    header = read_header(path)
    config = hf_config(header)
    plan(header, config)  # every tensor has an HF name and the shape the config implies
    try:
        family = family_of(config)
    except ValueError as exc:
        raise BrokenGguf(path, str(exc)) from None
    problems = unsupported(family, config)
    if problems:
        raise BrokenGguf(path, "its config (converted from the metadata): " + "; ".join(
            f"{field}={value!r} is not supported: {why}" for field, value, why in problems))
    return HfCheckpoint(path, family, config, config["num_hidden_layers"], header.parameters,
                        tuple(sorted(header.tensor_types)), config["vocab_size"], config["tie_word_embeddings"])


def gguf_source(model_id: str, kind: str, path: Path, cache_dir: Path | None, sha256: str | None = None,
                revision: str | None = None) -> ModelSource:
    """A ModelSource for a GGUF file whose header reads (BrokenGguf otherwise)."""
    quantization = read_header(path).quantization
    return ModelSource(model_id, kind, revision=revision, gguf=GgufOrigin(path, quantization, cache_dir, sha256))


def prepared(source: ModelSource) -> ModelSource:
    """The source with a Hugging Face folder: a GGUF file converted into its cache entry (once; later
    runs find it by the file's SHA-256). Other sources are returned as they are."""
    origin = source.gguf
    if origin is None or source.folder is not None:
        return source
    if origin.cache_dir is None:
        raise ModelNotAvailable(f"model {source.model_id!r} is a GGUF file, and no conversion cache is configured "
                                "(TUNIX_CONVERTED_MODELS_DIR)")
    from training.gguf.convert import convert

    done = convert(origin.path, origin.cache_dir, origin.sha256)
    return replace(source, folder=done.folder,
                   gguf=replace(origin, sha256=done.sha256, quantization=done.quantization, cache_entry=done.folder))


class GgufFiles:
    kind = "gguf"

    def __init__(self, models_dir: Path, lmstudio_dir: Path | None, cache_dir: Path | None):
        self.models_dir, self.lmstudio_dir, self.cache_dir = models_dir, lmstudio_dir, cache_dir

    def resolve(self, model_id: str) -> ModelSource | None:
        if not model_id.lower().endswith(".gguf") or "\0" in model_id:
            return None
        absolute = Path(model_id).is_absolute()
        roots = [self.models_dir] + ([self.lmstudio_dir] if absolute and self.lmstudio_dir is not None else [])
        for root in roots:
            path = within(model_id, root)
            if path is not None and is_regular_file(path):
                return gguf_source(model_id, self.kind, path, self.cache_dir)
        return None  # the catalog's generic answer: nothing said about paths outside the roots

    def available(self, batch_size: int, seq_len: int) -> list[AvailableModel]:
        """*.gguf at the top of the models folder and one or two folders down (<org>/<name>/<file>.gguf)."""
        if not self.models_dir.is_dir():
            return []
        found = []
        for path in sorted({*self.models_dir.glob("*.gguf"), *self.models_dir.glob("*/*.gguf"),
                            *self.models_dir.glob("*/*/*.gguf")}):
            model_id = str(path.relative_to(self.models_dir))
            real = within(model_id, self.models_dir)  # a link out of the models folder is not listed
            if real is not None and is_regular_file(real):
                found.append(listed(model_id, self.kind, real, self.cache_dir, batch_size, seq_len))
        return found


def listed(model_id: str, kind: str, path: Path, cache_dir: Path | None, batch_size: int, seq_len: int,
           revision: str | None = None) -> AvailableModel:
    """A GGUF file in the listing: sized from its header, or with the problem that stops it."""
    try:
        source = gguf_source(model_id, kind, path, cache_dir, revision=revision)
    except BrokenGguf as exc:
        return AvailableModel(ModelSource(model_id, kind, revision=revision), problem=str(exc))
    return sized(source, batch_size, seq_len)
