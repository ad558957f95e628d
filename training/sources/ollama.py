"""Ollama models, `ollama:NAME[:TAG]` (also `ollama:NAMESPACE/NAME[:TAG]` and
`ollama:HOST/NAMESPACE/NAME[:TAG]`), resolved offline from Ollama's store ($OLLAMA_MODELS, else
~/.ollama/models; Folders.ollama).

The store holds manifests/<host>/<namespace>/<name>/<tag> (JSON listing the layers) and
blobs/sha256-<hex>; the layer of media type application/vnd.ollama.image.model is the GGUF file. Every
part of the id is checked against a strict pattern before any path is built, every path stays inside
the store once symlinks are followed, files are read only when regular, and the blob must hash to the
digest its manifest names (checked once per file and modification).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from pathlib import Path

from training.gguf.header import GGUF_FILE_BYTES, BrokenGguf
from training.safe_files import JSON_BYTES, UnreadableFile, is_regular_file, open_regular, read_bounded, within
from training.sources.base import AvailableModel, ModelNotAvailable, ModelSource
from training.sources.gguf_file import gguf_source, listed

PREFIX = "ollama:"
DEFAULT_HOST, DEFAULT_NAMESPACE, DEFAULT_TAG = "registry.ollama.ai", "library", "latest"
MODEL_LAYER = "application/vnd.ollama.image.model"
_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_HOST = r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}(?::[0-9]{1,5})?"
_REF = re.compile(rf"^(?:(?:(?P<host>{_HOST})/)?(?P<namespace>{_PART})/)?(?P<name>{_PART})(?::(?P<tag>{_PART}))?$")
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
_RULE = ("must be ollama:NAME[:TAG], ollama:NAMESPACE/NAME[:TAG] or ollama:HOST/NAMESPACE/NAME[:TAG], each part "
         "letters, digits, '.', '_' or '-' (starting with a letter or digit, no '..')")


def parse(model_id: str) -> tuple[str, str, str, str]:
    """(host, namespace, name, tag) of an ollama: id; ModelNotAvailable naming the rule otherwise."""
    match = _REF.match(model_id.removeprefix(PREFIX))
    if match is None or ".." in model_id:
        raise ModelNotAvailable(f"model {model_id!r}: an Ollama model id {_RULE}")
    return (match["host"] or DEFAULT_HOST, match["namespace"] or DEFAULT_NAMESPACE, match["name"],
            match["tag"] or DEFAULT_TAG)


class OllamaStore:
    kind = "ollama"

    def __init__(self, store: Path | None, cache_dir: Path | None):
        self.store, self.cache_dir = store, cache_dir

    def resolve(self, model_id: str) -> ModelSource | None:
        if not model_id.startswith(PREFIX):
            return None
        host, namespace, name, tag = parse(model_id)
        missing = ModelNotAvailable(f"model {model_id!r} is not in the Ollama store ({self.store}): no manifest "
                                    f"{host}/{namespace}/{name}/{tag} there (`ollama pull {name}:{tag}` on a machine "
                                    "with network, then copy its models folder here or point OLLAMA_MODELS at it)")
        if self.store is None:
            raise missing
        manifest = within(Path("manifests", host, namespace, name, tag), self.store)
        if manifest is None or not is_regular_file(manifest):
            raise missing
        blob, digest, revision = self._blob(model_id, manifest)
        _verify(blob, digest, model_id)
        return gguf_source(model_id, self.kind, blob, self.cache_dir, sha256=digest, revision=revision)

    def _blob(self, model_id: str, manifest: Path) -> tuple[Path, str, str]:
        """(the model layer's blob, its sha256 hex, the manifest's own digest)."""
        try:
            text = read_bounded(manifest, JSON_BYTES)
            raw = json.loads(text.decode("utf-8"))
        except (UnreadableFile, ValueError):
            raise ModelNotAvailable(f"model {model_id!r}: its Ollama manifest is not readable JSON") from None
        layers = raw.get("layers") if isinstance(raw, dict) else None
        models = [l for l in layers or [] if isinstance(l, dict) and l.get("mediaType") == MODEL_LAYER]
        if len(models) != 1:
            raise ModelNotAvailable(f"model {model_id!r}: its Ollama manifest must list one layer of media type "
                                    f"{MODEL_LAYER}, it lists {len(models)}")
        if any(isinstance(l, dict) and l.get("mediaType") == "application/vnd.ollama.image.adapter" for l in layers):
            raise ModelNotAvailable(f"model {model_id!r}: an Ollama model with an adapter layer (a base model plus a "
                                    "LoRA) is not supported; name its base model")
        match = _DIGEST.match(str(models[0].get("digest")))
        if match is None:
            raise ModelNotAvailable(f"model {model_id!r}: its Ollama manifest's model digest is not sha256:<64 hex>")
        blob = within(Path("blobs", f"sha256-{match[1]}"), self.store)
        if blob is None or not is_regular_file(blob):
            raise ModelNotAvailable(f"model {model_id!r}: the Ollama store has no blob for its model layer")
        size = models[0].get("size")
        if isinstance(size, int) and size != blob.stat().st_size:
            raise ModelNotAvailable(f"model {model_id!r}: its blob is {blob.stat().st_size:,} bytes, its manifest "
                                    f"says {size:,} (an interrupted pull?)")
        return blob, match[1], "sha256:" + hashlib.sha256(text).hexdigest()  # the manifest's digest, as Ollama shows it

    def available(self, batch_size: int, seq_len: int) -> list[AvailableModel]:
        """Every manifest of the store with its model layer, sized from the GGUF header (no hashing)."""
        if self.store is None or not (self.store / "manifests").is_dir():
            return []
        found = []
        for manifest in sorted((self.store / "manifests").glob("*/*/*/*")):
            host, namespace, name, tag = manifest.relative_to(self.store / "manifests").parts
            short = (f"{name}" if (host, namespace) == (DEFAULT_HOST, DEFAULT_NAMESPACE)
                     else f"{namespace}/{name}" if host == DEFAULT_HOST else f"{host}/{namespace}/{name}")
            model_id = f"{PREFIX}{short}:{tag}"
            try:
                parse(model_id)
                if within(manifest.relative_to(self.store), self.store) is None:
                    continue  # a link out of the store is not listed
                blob, _, revision = self._blob(model_id, manifest)
            except ModelNotAvailable as exc:
                found.append(AvailableModel(ModelSource(model_id, self.kind), problem=str(exc)))
                continue
            found.append(listed(model_id, self.kind, blob, self.cache_dir, batch_size, seq_len, revision))
        return found


def _verify(blob: Path, digest: str, model_id: str) -> None:
    st = blob.stat()
    if _content_sha256(str(blob), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != digest:
        raise ModelNotAvailable(f"model {model_id!r}: its Ollama blob does not hash to the sha256 its manifest "
                                "names (a corrupt or replaced file)")


@functools.lru_cache(maxsize=64)
def _content_sha256(path: str, dev: int, ino: int, size: int, mtime_ns: int) -> str:
    """Hashed once per file identity and modification: a job create after the first costs a stat."""
    try:
        with open_regular(Path(path), GGUF_FILE_BYTES) as f:
            if os.fstat(f.fileno()).st_ino != ino:
                return ""
            return hashlib.file_digest(f, "sha256").hexdigest()
    except UnreadableFile as exc:
        raise BrokenGguf(Path(path), exc.problem) from None
