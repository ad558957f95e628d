"""A Hugging Face-format checkpoint folder, checked before anything trains on it (no JAX here).

What the loaders cannot see is checked here, because they fail silently: a config.json with
fewer layers than the safetensors drops layers, a wrong tie_word_embeddings ignores lm_head,
a tokenizer larger than the embedding indexes past it. Each problem names the file and field.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from training.hf_config import config_value, family_of, text_config, unsupported

_REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
# Decoder layers, also under a multimodal Gemma 3's language_model.* (vision tower layers are not).
_LAYER = re.compile(r"^(?:language_model\.)?model\.layers\.(\d+)\.")


class BrokenCheckpoint(ValueError):
    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


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


def read_checkpoint(folder: Path) -> HfCheckpoint:
    """The checked folder; BrokenCheckpoint naming the file and the problem otherwise."""
    try:
        return _read(folder)
    except BrokenCheckpoint:
        raise
    except (OSError, KeyError, TypeError, ValueError, ZeroDivisionError) as exc:  # a malformed file
        raise BrokenCheckpoint(folder, f"cannot be read as a checkpoint ({type(exc).__name__}: {exc})") from None


def _read(folder: Path) -> HfCheckpoint:
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
    headers = _safetensors_headers(folder)
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


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise BrokenCheckpoint(path, "file not found") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BrokenCheckpoint(path, f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BrokenCheckpoint(path, "must be a JSON object")
    return value


def _safetensors_headers(folder: Path) -> dict[Path, dict]:
    """Each shard's header (tensor name -> dtype, shape, offsets), read without loading tensors.
    With an index (model.safetensors.index.json), every shard it names must be there."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise BrokenCheckpoint(index, '"weight_map" must map tensor names to shard files')
        shards = sorted({folder / name for name in weight_map.values()})
        for shard in shards:
            if not shard.is_file():
                raise BrokenCheckpoint(shard, f"shard missing (named by {index.name})")
    else:
        shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        raise BrokenCheckpoint(folder, "no *.safetensors weights")
    return {shard: safetensors_header(shard) for shard in shards}


def safetensors_header(path: Path) -> dict:
    with open(path, "rb") as f:
        raw = f.read(8)
        size = struct.unpack("<Q", raw)[0] if len(raw) == 8 else -1
        if not 0 < size < 100 * 2**20:
            raise BrokenCheckpoint(path, "not a safetensors file (bad header length)")
        try:
            header = json.loads(f.read(size))
        except ValueError:
            raise BrokenCheckpoint(path, "not a safetensors file (header is not JSON)") from None
    end = max((t["data_offsets"][1] for n, t in header.items() if n != "__metadata__"), default=0)
    if path.stat().st_size < 8 + size + end:
        raise BrokenCheckpoint(path, f"truncated: the header needs {8 + size + end} bytes, the file has {path.stat().st_size}")
    return header


def _tokenizer_vocab(folder: Path) -> int | None:
    path = folder / "tokenizer.json"
    if not path.exists():
        if (folder / "tokenizer.model").exists():
            return None
        raise BrokenCheckpoint(folder, "no tokenizer (tokenizer.json or tokenizer.model)")
    tokenizer = _read_json(path)
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
