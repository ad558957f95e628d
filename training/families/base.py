"""What every model family provides: the `Family` record the registry (training/families/__init__.py) holds.

No JAX or tunix at import time: training/hf_config.py reads the registry, and importing it must stay cheap.
Everything that needs tunix (the ModelConfig, the loaders) is imported inside the functions that use it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


# tunix's Llama3, Qwen2 and Qwen3 keep Hugging Face's projection names.
PROJ_LORA_TARGETS = {"attention": ".*q_proj|.*k_proj|.*v_proj|.*o_proj", "mlp": ".*gate_proj|.*up_proj|.*down_proj"}


def no_problems(family: str, c: dict) -> list[tuple[str, object, str]]:
    """Most families need no refusals beyond those training/hf_config.unsupported makes for all."""
    return []


def tunix_key_mapping(loader, model_config) -> dict:
    """tunix's own HF-name -> tunix-name table for the family's loader module."""
    return loader._get_key_and_transform_mapping(model_config)


def create_from_safetensors(family: Family, folder: Path, model_config, loader, mode: str):
    """The tunix model with every weight of folder loaded by the loader's own create_model_from_safe_tensors."""
    import jax.numpy as jnp

    return loader.create_model_from_safe_tensors(str(folder), model_config, mesh=None, dtype=jnp.float32, mode=mode)


@dataclass(frozen=True)
class Family:
    """One model family: how its config.json maps to tunix, and what LoRA, RoPE and export need of it."""

    name: str
    model_types: tuple[str, ...]  # the config.json model_type values that are this family
    loader: str  # the tunix module whose safetensors loader reads its checkpoints
    # (family, text config, shape fields) -> tunix ModelConfig; called by tunix_config after the checks
    build_config: Callable[[Family, dict, dict], Any]
    lora_targets: dict[str, str]  # {"attention": qwix module_path regex, "mlp": regex}
    # HF's defaults for fields a config.json may leave out
    defaults: dict = field(default_factory=dict)
    # (family name, text config) -> (field, value, why) for what only this family's tunix model cannot honour,
    # beyond the checks training/hf_config.unsupported makes for every family
    config_problems: Callable[[str, dict], list[tuple[str, object, str]]] = no_problems
    merge_exporter: str | None = None  # the tunix module that writes a merged LoRA model, if tunix has one
    rope_override: bool = False  # tunix's attention hardcodes RoPE: training/rope.py replaces it
    # the rope_types computed as transformers does (tunix's Gemma3 scales linearly itself; training/rope.py
    # computes "llama3")
    rope_types: tuple[str, ...] = ("default",)
    # (loader module, ModelConfig) -> the HF-name -> tunix-name table the load uses
    key_mapping: Callable[[Any, Any], dict] = tunix_key_mapping
    # (family, folder, ModelConfig, loader module, "original" | "optimized") -> the loaded tunix model
    create_model: Callable[[Family, Path, Any, Any, str], Any] = create_from_safetensors

    def tunix_config(self, config: dict):
        """The tunix ModelConfig (float32 parameters) for config.json; UnsupportedConfig when tunix cannot
        honour it."""
        # hf_config reads this registry at import: imported here, not at the top, to keep the import one way.
        from training.hf_config import UnsupportedConfig, config_value, text_config, unsupported

        problems = unsupported(self.name, config)
        if problems:
            raise UnsupportedConfig(self.name, problems)
        c = text_config(config)

        def g(field):
            return config_value(c, self.name, field)

        shape = dict(num_layers=g("num_hidden_layers"), embed_dim=g("hidden_size"), hidden_dim=g("intermediate_size"),
                     num_heads=g("num_attention_heads"), head_dim=g("head_dim"), num_kv_heads=g("num_key_value_heads"))
        return self.build_config(self, c, shape)

    def load_module(self):
        """The tunix loader module (imports tunix)."""
        return importlib.import_module(self.loader)


def decoder_config_fields(family: Family, c: dict, shape: dict) -> dict:
    """The ModelConfig fields tunix's Llama3, Qwen2 and Qwen3 name alike."""
    from training.hf_config import config_value, rope_settings

    return dict(**shape, vocab_size=config_value(c, family.name, "vocab_size"),
                rope_theta=rope_settings(c, family.name)[0]["rope_theta"],
                norm_eps=config_value(c, family.name, "rms_norm_eps"))
