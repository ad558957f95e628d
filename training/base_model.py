"""The model a run starts from, with its tokenizer and the lineage of its weights.

A built-in model is initialised from the run's seed with the character tokenizer; a Hugging Face
checkpoint (a folder, or a snapshot of the offline cache) is loaded with its own tokenizer. The
lineage says exactly which weights a trial started from: the folder or cache snapshot revision
and a hash of every file (the cache's blob names, which are the files' SHA-256 for the weights;
a SHA-256 computed here for a plain folder).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.catalog import ModelSource
from training.families import family as family_named
from training.hf_checkpoint import read_checkpoint
from training.tokenizer import CharTokenizer, HfTokenizer


def lora_modules(family: str, targets: str) -> str:
    """The qwix module_path regex for `targets` ("all", "attention" or "mlp") of a family. Every linear map of a
    block gets adapters by default; the embedding stays frozen."""
    parts = family_named(family).lora_targets
    return "|".join(parts.values()) if targets == "all" else parts[targets]


@dataclass
class BaseModel:
    model: Any  # the nnx module
    tokenizer: CharTokenizer | HfTokenizer
    family: str
    lineage: dict


def load_base(source: ModelSource, seed: int) -> BaseModel:
    from training.model import build_model

    if source.kind == "built-in":
        tokenizer = CharTokenizer()
        model, _ = build_model(source.model_id, tokenizer.vocab_size, seed)
        return BaseModel(model, tokenizer, "gemma3", {
            "id": source.model_id, "source": "built-in", "tokenizer": "char", "vocab_size": tokenizer.vocab_size})
    from training.catalog import prepared
    from training.hf_models import load_hf_model

    source = prepared(source)  # a GGUF file: converted once into its cached Hugging Face folder
    checkpoint = read_checkpoint(source.folder)
    tokenizer = HfTokenizer(source.folder)
    model = load_hf_model(source.folder, checkpoint.config)
    lineage = {
        "id": source.model_id, "source": source.kind, "folder": str(source.folder), "revision": source.revision,
        "family": checkpoint.family, "parameters": checkpoint.num_parameters, "stored_dtypes": checkpoint.tensor_dtypes,
        "tokenizer": "hf", "vocab_size": tokenizer.vocab_size, "files": file_hashes(source.folder),
    }
    if source.gguf is not None:  # the file the folder was converted from: what the weights really are
        lineage["gguf"] = {"file": str(source.gguf.path), "sha256": source.gguf.sha256,
                           "quantization": source.gguf.quantization, "cache_entry": str(source.gguf.cache_entry)}
    return BaseModel(model, tokenizer, checkpoint.family, lineage)


def file_hashes(folder: Path) -> dict[str, str]:
    """name -> "sha256:<hex>" of every file the checkpoint holds."""
    hashes = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        blob = path.resolve().name  # in the HF cache, a symlink to blobs/<sha256> (weights) or <sha1> (text)
        if path.is_symlink() and len(blob) == 64:
            hashes[path.name] = f"sha256:{blob}"
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        hashes[path.name] = f"sha256:{digest.hexdigest()}"
    return hashes
