"""Llama 3 (config.json model_type "llama"): tunix.models.llama3."""

from __future__ import annotations

from training.families.base import PROJ_LORA_TARGETS, Family, decoder_config_fields


def _build_config(family: Family, c: dict, shape: dict):
    from tunix.models.llama3 import model as llama3

    from training.hf_config import config_value

    # tunix's Llama3 has no dtype fields: its parameters are float32
    return llama3.ModelConfig(**decoder_config_fields(family, c, shape),
                              weight_tying=bool(config_value(c, family.name, "tie_word_embeddings")))


LLAMA3 = Family(
    name="llama3", model_types=("llama",), loader="tunix.models.llama3.params", build_config=_build_config,
    lora_targets=PROJ_LORA_TARGETS, rope_override=True, rope_types=("default", "llama3"),
    defaults=dict(rms_norm_eps=1e-6, tie_word_embeddings=False, hidden_act="silu"))
