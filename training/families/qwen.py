"""Qwen 2 ("qwen2") and Qwen 3 ("qwen3"): tunix.models.qwen2 and tunix.models.qwen3."""

from __future__ import annotations

import importlib

from training.families.base import PROJ_LORA_TARGETS, Family, decoder_config_fields


def _build_config(family: Family, c: dict, shape: dict):
    import jax.numpy as jnp

    from training.hf_config import config_value

    model_lib = importlib.import_module(f"tunix.models.{family.name}.model")
    return model_lib.ModelConfig(**decoder_config_fields(family, c, shape),
                                 use_tied_embedding=bool(config_value(c, family.name, "tie_word_embeddings")),
                                 dtype=jnp.float32, param_dtype=jnp.float32)


QWEN3 = Family(
    name="qwen3", model_types=("qwen3",), loader="tunix.models.qwen3.params", build_config=_build_config,
    lora_targets=PROJ_LORA_TARGETS, merge_exporter="tunix.models.qwen3.params", rope_override=True,
    defaults=dict(head_dim=128, rms_norm_eps=1e-6, tie_word_embeddings=False, hidden_act="silu"))

QWEN2 = Family(
    name="qwen2", model_types=("qwen2",), loader="tunix.models.qwen2.params", build_config=_build_config,
    lora_targets=PROJ_LORA_TARGETS,
    defaults=dict(rms_norm_eps=1e-6, tie_word_embeddings=False, hidden_act="silu"))
