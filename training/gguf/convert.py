"""A GGUF file converted once into a Hugging Face folder, cached by the file's SHA-256.

<cache>/<sha256>/ holds config.json, model.safetensors (float32), tokenizer.json, tokenizer_config.json
(with the chat template), generation_config.json and gguf.json (where it came from). From there a model
takes the HF path like any checkpoint folder. The folder is written under a temporary name in the cache
and renamed into place, so concurrent trials never see half a folder: the first rename wins and the
others use its result. The weights are streamed one tensor at a time into the safetensors file, so the
conversion's memory is the largest tensor, not the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.gguf.config import hf_config
from training.gguf.header import GGUF_FILE_BYTES, BrokenGguf, GgufHeader, header_of
from training.gguf.tensors import plan, tensors
from training.gguf.tokenizer import tokenizer_files
from training.safe_files import UnreadableFile, open_regular, read_json, within

CONVERTER = "tunix-tune gguf 2"  # changes when the converted files would (2: BOS only when the file adds one)


@dataclass(frozen=True)
class Conversion:
    folder: Path  # the cache entry, a Hugging Face folder
    sha256: str  # of the GGUF file
    quantization: str
    cached: bool  # found in the cache (not converted by this call)
    seconds: float


def convert(path: Path, cache_dir: Path, expected_sha256: str | None = None) -> Conversion:
    """The cached HF folder of the GGUF file at `path` (converted now when not cached yet).
    expected_sha256: what the file must hash to (an Ollama blob's digest); BrokenGguf otherwise."""
    started = time.perf_counter()
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        with open_regular(path, GGUF_FILE_BYTES) as f:  # header, hash and weights from one open file
            header = header_of(f, path)
            f.seek(0)
            sha256 = hashlib.file_digest(f, "sha256").hexdigest()
            if expected_sha256 is not None and sha256 != expected_sha256:
                raise BrokenGguf(path, f"its content hashes to sha256:{sha256}, not the sha256:{expected_sha256} "
                                 "its manifest names")
            entry = _entry(cache_dir, sha256)
            if _current(entry):
                return Conversion(entry, sha256, header.quantization, True, time.perf_counter() - started)
            if os.fstat(f.fileno()).st_size != header.file_size:
                raise BrokenGguf(path, "changed while it was being read")
            data = np.memmap(f, dtype=np.uint8, mode="r")
            _write_entry(header, data, sha256, cache_dir, entry)
    except UnreadableFile as exc:
        raise BrokenGguf(path, exc.problem) from None
    return Conversion(entry, sha256, header.quantization, False, time.perf_counter() - started)


def _entry(cache_dir: Path, sha256: str) -> Path:
    entry = within(sha256, cache_dir)  # a link planted in the cache may not lead out of it
    if entry is None:
        raise BrokenGguf(cache_dir / sha256, "the conversion cache entry leads out of the cache folder")
    return entry


def _current(entry: Path) -> bool:
    """A complete entry written by this converter. One written by another CONVERTER (a fix changed what
    conversion writes) is converted again and replaced; a folder without a readable gguf.json too."""
    try:
        return entry.is_dir() and read_json(entry / "gguf.json").get("converter") == CONVERTER
    except (UnreadableFile, ValueError, AttributeError):
        return False


def _write_entry(header: GgufHeader, data: np.ndarray, sha256: str, cache_dir: Path, entry: Path) -> None:
    config = hf_config(header)
    planned = plan(header, config)
    files = tokenizer_files(header)
    tmp = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=cache_dir))
    tmp.chmod(0o755)  # mkdtemp makes it private; the entry is read by every trial and the API
    try:
        _write_safetensors(tmp / "model.safetensors", header, data, planned)
        files["tokenizer.json"].save(str(tmp / "tokenizer.json"))
        for name, value in {**files, "config.json": config}.items():
            if name != "tokenizer.json":
                (tmp / name).write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        (tmp / "gguf.json").write_text(json.dumps({
            "sha256": sha256, "file_name": header.path.name, "architecture": header.architecture,
            "quantization": header.quantization, "tensor_types": header.tensor_types,
            "name": header.metadata.get("general.name"), "converter": CONVERTER}, indent=2) + "\n")
        _install(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _install(tmp: Path, entry: Path) -> None:
    """tmp renamed into place (atomic); an outdated entry is moved aside first. When another trial's
    conversion got there first, its entry stands and tmp is dropped."""
    try:
        os.rename(tmp, entry)
        return
    except OSError:
        if not entry.is_dir():
            raise
    if _current(entry):
        return
    stale = entry.with_name(f"{tmp.name}-outdated")
    try:
        os.rename(entry, stale)  # a concurrent trial may have done this already: then entry is its new one
        os.rename(tmp, entry)
    except OSError:
        if not _current(entry):
            raise
    finally:
        shutil.rmtree(stale, ignore_errors=True)


def _write_safetensors(path: Path, header: GgufHeader, data: np.ndarray, planned) -> None:
    """A safetensors file written tensor by tensor (its header is known before any tensor is)."""
    index, offset = {}, 0
    for p in planned:
        size = 4 * int(np.prod(p.shape, dtype=np.int64))
        index[p.hf_name] = {"dtype": "F32", "shape": list(p.shape), "data_offsets": [offset, offset + size]}
        offset += size
    index["__metadata__"] = {"format": "pt", "source": "gguf"}
    text = json.dumps(index, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)) + text)
        for p, values in tensors(header, data, planned):
            out.write(np.ascontiguousarray(values, dtype="<f4").tobytes())
