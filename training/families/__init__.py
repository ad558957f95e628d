"""The model families this project loads from Hugging Face checkpoints, one `Family` record each.

A family's knowledge lives in one file here: how its config.json becomes a tunix ModelConfig, its HF
defaults, its LoRA target modules, its merged-model exporter and whether training/rope.py must replace
tunix's RoPE. training/hf_config.py, hf_models.py, rope.py, base_model.py and hf_export.py read this
registry instead of branching on family names.

To add a family: write training/families/<name>.py defining a `Family` (see base.py and llama.py for the
smallest one), then add it to `FAMILIES` below. Its config.json model_types are then recognised by
training.hf_config.family_of. Importing this package imports no JAX or tunix.
"""

from __future__ import annotations

from training.families.base import Family
from training.families.gemma import GEMMA, GEMMA2
from training.families.gemma3 import GEMMA3
from training.families.llama import LLAMA3
from training.families.qwen import QWEN2, QWEN3

# The order is the one error messages list the families in.
FAMILIES: tuple[Family, ...] = (GEMMA3, QWEN3, LLAMA3, QWEN2, GEMMA, GEMMA2)
_BY_NAME = {f.name: f for f in FAMILIES}
# config.json model_type -> family name
MODEL_TYPES = {model_type: f.name for f in FAMILIES for model_type in f.model_types}


def family(name: str) -> Family:
    """The family called name ("gemma3", "qwen3", "llama3", ...); ValueError naming the known ones otherwise."""
    if name not in _BY_NAME:
        raise ValueError(f"family must be one of {', '.join(_BY_NAME)}, got {name!r}")
    return _BY_NAME[name]


def family_of(config: dict) -> str:
    """The family name of a (text) config.json, by its model_type."""
    model_type = config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type {model_type!r} is not supported; supported: {', '.join(sorted(MODEL_TYPES))}")
    return MODEL_TYPES[model_type]


__all__ = ["FAMILIES", "MODEL_TYPES", "Family", "family", "family_of"]
