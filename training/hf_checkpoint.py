"""A Hugging Face-format checkpoint folder, checked before anything trains on it (no JAX here).

What the loaders cannot see is checked here, because they fail silently: a config.json with
fewer layers than the safetensors drops layers, a wrong tie_word_embeddings ignores lm_head,
a tokenizer larger than the embedding indexes past it. Each problem names the file and field.

Every file read (config, index, shards, tokenizer) must lie inside the checkpoint's root once
symlinks are followed, or the folder is refused without reading it: a link to a file elsewhere
would have its values echoed in the problems. The root is the Hugging Face cache for a cache
snapshot (its files are links to ../../blobs/), else the checkpoint folder (confining_root).
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from training.hf_config import config_value, family_of, text_config, unsupported
from training.safe_files import (
    JSON_BYTES,
    TOKENIZER_BYTES,
    UnreadableFile,
    is_regular_file,
    open_regular,
    read_json,
    within,
)

_REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
# Decoder layers, also under a multimodal Gemma 3's language_model.* (vision tower layers are not).
_LAYER = re.compile(r"^(?:language_model\.)?model\.layers\.(\d+)\.")
# A safetensors header is at most this long: a header is ~150 bytes a tensor, so even 100,000
# tensors fit; the library's own bound (100 MB) would let one crafted file cost that much to refuse.
HEADER_BYTES = 32 * 2**20


class BrokenCheckpoint(ValueError):
    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem

    def __reduce__(self):  # rebuilt from its own arguments (Ray pickles exceptions across processes)
        return type(self), (self.path, self.problem), self.__dict__


@dataclass(frozen=True)
class HfCheckpoint:
    folder: Path
    family: str
    config: dict
    num_layers: int
    num_parameters: int
    tensor_dtypes: tuple[str, ...]  # as stored, e.g. ("BF16",)
    tokenizer_vocab: int | None  # None: a SentencePiece tokenizer.model (not counted here)
    tied_embeddings: bool


def confining_root(folder: Path) -> Path:
    """Where a checkpoint's files may lead: the hub cache for a snapshot
    (<cache>/models--org--name/snapshots/<revision>), else the folder itself."""
    snapshots = folder.parent
    if snapshots.name == "snapshots" and snapshots.parent.name.startswith("models--"):
        return snapshots.parent.parent
    return folder


def read_checkpoint(folder: Path, root: Path | None = None) -> HfCheckpoint:
    """The checked folder; BrokenCheckpoint naming the file and the problem otherwise. Its files
    must lie inside `root` (default: confining_root(folder)) once symlinks are followed."""
    try:
        return _read(folder, root or confining_root(folder))
    except BrokenCheckpoint:
        raise
    except (OSError, KeyError, TypeError, ValueError, ZeroDivisionError) as exc:  # a malformed file
        raise BrokenCheckpoint(folder, f"cannot be read as a checkpoint ({type(exc).__name__}: {exc})") from None


def _read(folder: Path, root: Path) -> HfCheckpoint:
    _only_regular_files(folder, root)
    raw = _read_json(folder / "config.json")
    config = text_config(raw)  # a multimodal Gemma 3 holds its decoder's fields in text_config
    try:
        family = family_of(config)
    except ValueError as exc:
        raise BrokenCheckpoint(folder / "config.json", str(exc)) from None
    for field in _REQUIRED:
        value = config_value(config, family, field)
        if not isinstance(value, int) or value <= 0:
            raise BrokenCheckpoint(folder / "config.json", f"{field} must be a positive integer, got {value!r}")
    config = {**config, **{field: config_value(config, family, field) for field in _REQUIRED}}
    problems = unsupported(family, raw)
    if problems:
        raise BrokenCheckpoint(folder / "config.json", "; ".join(
            f"{field}={value!r} is not supported: {why}" for field, value, why in problems))
    headers = _safetensors_headers(folder, root)
    names = {name for header in headers.values() for name in header if name != "__metadata__"}
    if any(name.startswith("model.language_model.") for name in names):
        raise BrokenCheckpoint(folder, "weights named model.language_model.* (written by newer transformers) cannot "
                               "be loaded by tunix, which reads language_model.model.*")
    layers = sorted({int(m.group(1)) for name in names if (m := _LAYER.match(name))})
    if len(layers) != config["num_hidden_layers"] or layers != list(range(len(layers))):
        held = f"layers {layers[0]}-{layers[-1]}" if layers else "no layers"
        raise BrokenCheckpoint(folder / "config.json", f"num_hidden_layers is {config['num_hidden_layers']}, but the "
                               f"safetensors hold {len(layers)} ({held})")
    tied = bool(config_value(config, family, "tie_word_embeddings"))
    if not tied and "lm_head.weight" not in names:
        raise BrokenCheckpoint(folder / "config.json", "tie_word_embeddings is false, but the safetensors have no "
                               "lm_head.weight; set it to true")
    if tied and "lm_head.weight" in names:
        raise BrokenCheckpoint(folder / "config.json", "tie_word_embeddings is true, but the safetensors hold their "
                               "own lm_head.weight, which would be ignored; set it to false")
    vocab = _tokenizer_vocab(folder)
    if vocab is not None and vocab > config["vocab_size"]:
        raise BrokenCheckpoint(folder / "tokenizer.json", f"the tokenizer has {vocab} tokens, more than the model's "
                               f"vocab_size {config['vocab_size']} (config.json)")
    tensors = [t for header in headers.values() for name, t in header.items() if name != "__metadata__"]
    return HfCheckpoint(
        folder=folder, family=family, config=config, num_layers=len(layers),
        num_parameters=sum(_count(t["shape"]) for t in tensors),
        tensor_dtypes=tuple(sorted({t["dtype"] for t in tensors})), tokenizer_vocab=vocab, tied_embeddings=tied,
    )


def _only_regular_files(folder: Path, root: Path) -> None:
    """Every file of the folder is a regular file inside `root` once symlinks are followed: the
    loaders (transformers, tunix) open whatever is there, and a FIFO or a device would block or
    never end, a link elsewhere would be read."""
    for entry in sorted(folder.iterdir()):
        if not entry.is_dir():
            if not is_regular_file(entry):
                raise BrokenCheckpoint(entry, "not a regular file")
            _confined(entry, root)


def _confined(path: Path, root: Path) -> Path:
    """`path` resolved, when it lies inside `root`; BrokenCheckpoint otherwise (saying nothing of
    where it leads)."""
    real = within(path, root)
    if real is None:
        raise BrokenCheckpoint(path, "a link out of the model's folder (or the Hugging Face cache); copy the file in")
    return real


def _read_json(path: Path, limit: int = JSON_BYTES) -> dict:
    try:
        value = read_json(path, limit)
    except UnreadableFile as exc:
        raise BrokenCheckpoint(path, exc.problem) from None
    except ValueError as exc:  # not UTF-8, not JSON
        raise BrokenCheckpoint(path, f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BrokenCheckpoint(path, "must be a JSON object")
    return value


def _safetensors_headers(folder: Path, root: Path) -> dict[Path, dict]:
    """Each shard's header (tensor name -> dtype, shape, offsets), read without loading tensors.
    With an index (model.safetensors.index.json), every shard it names must be there."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise BrokenCheckpoint(index, '"weight_map" must map tensor names to shard files')
        shards = sorted({_shard(folder, name, index) for name in weight_map.values()})
        for shard in shards:
            _confined(shard, root)  # first: a shard may sit in a subfolder, which the folder's listing skips
            if not shard.is_file():
                raise BrokenCheckpoint(shard, f"shard missing (named by {index.name})")
    else:
        shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        raise BrokenCheckpoint(folder, "no *.safetensors weights")
    return {shard: safetensors_header(shard) for shard in shards}


def _shard(folder: Path, name, index: Path) -> Path:
    """A shard the index names: a file name in the folder (the index is data, not a path to follow)."""
    if not isinstance(name, str) or not name or "\0" in name or not Path(os.path.normpath(folder / name)).is_relative_to(folder):
        raise BrokenCheckpoint(index, f"weight_map names {str(name)[:200]!r}, not a file in the checkpoint folder")
    return folder / name


def safetensors_header(path: Path) -> dict:
    """The header only: its 8-byte length is read first and bounded, the weights are not read."""
    try:
        f = open_regular(path, limit=2**63 - 1)  # weights may be any size; only the header is read
    except UnreadableFile as exc:
        raise BrokenCheckpoint(path, exc.problem) from None
    with f:
        size_of_file = os.fstat(f.fileno()).st_size
        raw = f.read(8)
        size = struct.unpack("<Q", raw)[0] if len(raw) == 8 else -1
        if not 0 < size < HEADER_BYTES or 8 + size > size_of_file:
            raise BrokenCheckpoint(path, "not a safetensors file (bad header length)")
        try:
            header = json.loads(f.read(size))
        except ValueError:
            raise BrokenCheckpoint(path, "not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise BrokenCheckpoint(path, "not a safetensors file (header is not a JSON object)")
    end = max((t["data_offsets"][1] for n, t in header.items() if n != "__metadata__"), default=0)
    if size_of_file < 8 + size + end:
        raise BrokenCheckpoint(path, f"truncated: the header needs {8 + size + end} bytes, the file has {size_of_file}")
    return header


def _tokenizer_vocab(folder: Path) -> int | None:
    path = folder / "tokenizer.json"
    if not path.exists():
        if (folder / "tokenizer.model").exists():
            return None
        raise BrokenCheckpoint(folder, "no tokenizer (tokenizer.json or tokenizer.model)")
    tokenizer = _read_json(path, TOKENIZER_BYTES)
    vocab = (tokenizer.get("model") or {}).get("vocab")
    if not isinstance(vocab, (dict, list)) or not vocab:
        raise BrokenCheckpoint(path, 'has no "model.vocab": not a tokenizers-library tokenizer')
    ids = list(vocab.values()) if isinstance(vocab, dict) else range(len(vocab))
    added = [t.get("id", -1) for t in tokenizer.get("added_tokens") or [] if isinstance(t, dict)]
    return max([*ids, *added]) + 1


def _count(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
