"""Gemma 1 ("gemma") and Gemma 2 ("gemma2"): one tunix model, tunix.models.gemma; Gemma 2 adds post-norms,
soft-caps and local (sliding-window) layers."""

from __future__ import annotations

from training.families.base import Family, tunix_key_mapping

# Gemma 1 / 2 / 3 name their attention maps alike in tunix (qkv_einsum when kv heads == heads).
GEMMA_LORA_TARGETS = {"attention": ".*qkv_einsum|.*q_einsum|.*kv_einsum|.*attn_vec_einsum",
                      "mlp": ".*gate_proj|.*up_proj|.*down_proj"}
_LOADER = "tunix.models.gemma.params_safetensors"
_GEMMA_NORM_EPS = 1e-6  # hardcoded in the RMSNorm of tunix's Gemma and Gemma3


def _build_config(family: Family, c: dict, shape: dict):
    from tunix.models.gemma import model as gemma

    from training.hf_config import config_value, given, layer_types

    v2, kinds = family.name == "gemma2", layer_types(c, family.name)
    local, full = gemma.AttentionType.LOCAL_SLIDING, gemma.AttentionType.GLOBAL
    return gemma.ModelConfig(  # no dtype fields: its parameters are float32
        **shape, num_embed=config_value(c, family.name, "vocab_size"), use_post_attn_norm=v2, use_post_ffw_norm=v2,
        attention_types=[local if kind == "sliding_attention" else full for kind in kinds],
        sliding_window_size=given(c, family.name, "sliding_window") if "sliding_attention" in kinds else None,
        final_logit_softcap=given(c, family.name, "final_logit_softcapping") if v2 else None,
        attn_logits_soft_cap=given(c, family.name, "attn_logit_softcapping") if v2 else None)


def gemma_problems(family: str, c: dict) -> list[tuple[str, object, str]]:
    """What every tunix Gemma (1, 2 and 3) hardcodes, refused when config.json says otherwise."""
    from training.hf_config import config_value

    problems = []
    eps = config_value(c, family, "rms_norm_eps")
    if eps != _GEMMA_NORM_EPS:
        problems.append(("rms_norm_eps", eps, f"tunix's {family} RMSNorm always uses {_GEMMA_NORM_EPS:g}"))
    if not config_value(c, family, "tie_word_embeddings"):
        problems.append(("tie_word_embeddings", False,
                         f"tunix's {family} always decodes with the embedding; lm_head.weight would be ignored"))
    if c.get("use_bidirectional_attention"):
        problems.append(("use_bidirectional_attention", True, f"tunix's {family} text attention is causal"))
    return problems


def _gemma2_problems(family: str, c: dict) -> list[tuple[str, object, str]]:
    """Gemma's, and what tunix's Gemma cannot do of Gemma 2's query scaling and local layers."""
    from training.hf_config import config_value, given, layer_types

    problems = gemma_problems(family, c)
    scalar, head_dim = config_value(c, "gemma2", "query_pre_attn_scalar"), config_value(c, "gemma2", "head_dim")
    if scalar != head_dim:  # Gemma 2 27B scales by hidden_size / heads (144) with head_dim 128
        why = f"tunix's gemma scales queries by 1/sqrt(head_dim={head_dim}) only"
        problems.append(("query_pre_attn_scalar", scalar, why))
    kinds = layer_types(c, "gemma2")
    if set(kinds) - {"full_attention", "sliding_attention"}:
        problems.append(("layer_types", kinds, "tunix's gemma has only full and sliding-window attention layers"))
    if len(kinds) != config_value(c, "gemma2", "num_hidden_layers"):
        problems.append(("layer_types", kinds, "must name one type per layer (num_hidden_layers)"))
    if "sliding_attention" in kinds and not given(c, "gemma2", "sliding_window"):
        problems.append(("sliding_window", c.get("sliding_window"), "tunix's gemma local layers need a window"))
    return problems


def _gemma1_key_mapping(loader, model_config) -> dict:
    """tunix's Gemma table is Gemma 2's, where post_attention_layernorm normalises the attention output;
    Gemma 1's post_attention_layernorm is the norm before the MLP."""
    mapping = tunix_key_mapping(loader, model_config)
    mapping[r"model\.layers\.([0-9]+)\.post_attention_layernorm\.weight"] = (r"layers.\1.pre_ffw_norm.scale", None)
    return mapping


def _create_model(family: Family, folder, model_config, loader, mode: str):
    """tunix's create_model_from_safe_tensors knows only Gemma 2's key table: load with the family's own."""
    import jax.numpy as jnp
    from tunix.models import safetensors_loader
    from tunix.models.gemma import model as gemma

    return safetensors_loader.load_and_create_model(
        str(folder), gemma.Gemma, model_config, lambda cfg: family.key_mapping(loader, cfg), mesh=None,
        preprocess_fn=loader._make_preprocess_fn(model_config), dtype=jnp.float32, mode=mode)


GEMMA = Family(
    name="gemma", model_types=("gemma",), loader=_LOADER, build_config=_build_config,
    lora_targets=GEMMA_LORA_TARGETS, rope_override=True, config_problems=gemma_problems,
    key_mapping=_gemma1_key_mapping, create_model=_create_model,
    defaults=dict(vocab_size=256_000, hidden_size=3072, intermediate_size=24_576, num_hidden_layers=28,
                  num_attention_heads=16, num_key_value_heads=16, head_dim=256, rms_norm_eps=1e-6,
                  tie_word_embeddings=True, hidden_act="gelu_pytorch_tanh"))

GEMMA2 = Family(
    name="gemma2", model_types=("gemma2",), loader=_LOADER, build_config=_build_config,
    lora_targets=GEMMA_LORA_TARGETS, rope_override=True, config_problems=_gemma2_problems,
    create_model=_create_model,
    defaults=dict(vocab_size=256_000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                  num_attention_heads=8, num_key_value_heads=4, head_dim=256, rms_norm_eps=1e-6,
                  query_pre_attn_scalar=256, sliding_window=4096, final_logit_softcapping=30.0,
                  attn_logit_softcapping=50.0, tie_word_embeddings=True, hidden_activation="gelu_pytorch_tanh"))
