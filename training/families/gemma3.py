"""Gemma 3 ("gemma3_text", and the text decoder of a multimodal "gemma3"): tunix.models.gemma3."""

from __future__ import annotations

from training.families.base import Family
from training.families.gemma import GEMMA_LORA_TARGETS, gemma_problems

_GEMMA3_PATTERN = 6  # tunix cycles 5 sliding-window layers, then 1 global layer


def _build_config(family: Family, c: dict, shape: dict):
    import jax.numpy as jnp
    from tunix.models.gemma3 import model as gemma3

    from training.hf_config import config_value, given, rope_settings

    def g(field):
        return config_value(c, family.name, field)

    full, local = rope_settings(c, family.name)[0], rope_settings(c, family.name, "sliding_attention")[0]
    by_head_dim = g("query_pre_attn_scalar") == g("head_dim")
    norm = gemma3.QueryPreAttentionNormalisation
    return gemma3.ModelConfig(
        **shape, num_embed=g("vocab_size"), sliding_window_size=given(c, family.name, "sliding_window"),
        global_base_frequency=full["rope_theta"], local_base_frequency=local["rope_theta"],
        global_scale_factor=float(full.get("factor", 1.0)), local_scale_factor=float(local.get("factor", 1.0)),
        query_pre_attn_norm=norm.BY_ONE_OVER_SQRT_HEAD_DIM if by_head_dim
        else norm.BY_ONE_OVER_SQRT_EMBED_DIM_DIV_NUM_HEADS,
        param_dtype=jnp.float32)


def _gemma3_problems(family: str, c: dict) -> list[tuple[str, object, str]]:
    """Gemma's, and what tunix's Gemma3 fixes: no soft-caps, its query scalings, its layer pattern."""
    from training.hf_config import config_value, given

    problems = gemma_problems(family, c)
    for field in ("final_logit_softcapping", "attn_logit_softcapping"):
        if c.get(field) is not None:
            problems.append((field, c[field], "tunix's Gemma3 does not soft-cap"))
    scalar, head_dim = config_value(c, "gemma3", "query_pre_attn_scalar"), config_value(c, "gemma3", "head_dim")
    per_head = config_value(c, "gemma3", "hidden_size") // config_value(c, "gemma3", "num_attention_heads")
    if scalar not in (head_dim, per_head):
        why = f"tunix scales queries by 1/sqrt(head_dim={head_dim}) or 1/sqrt(hidden_size/heads={per_head}) only"
        problems.append(("query_pre_attn_scalar", scalar, why))
    pattern = c.get("sliding_window_pattern", c.get("_sliding_window_pattern", _GEMMA3_PATTERN))
    expected = ["sliding_attention" if (i + 1) % _GEMMA3_PATTERN else "full_attention"
                for i in range(config_value(c, "gemma3", "num_hidden_layers"))]
    if c.get("layer_types") and list(c["layer_types"]) != expected:
        why = "tunix's Gemma3 always repeats 5 sliding-window layers then 1 global layer"
        problems.append(("layer_types", c["layer_types"], why))
    elif not c.get("layer_types") and pattern != _GEMMA3_PATTERN:
        problems.append(("sliding_window_pattern", pattern, f"tunix's Gemma3 pattern is fixed at {_GEMMA3_PATTERN}"))
    if not given(c, "gemma3", "sliding_window"):
        problems.append(("sliding_window", c.get("sliding_window"), "tunix's Gemma3 local layers need a window"))
    return problems


GEMMA3 = Family(
    name="gemma3", model_types=("gemma3_text", "gemma3"), loader="tunix.models.gemma3.params_safetensors",
    build_config=_build_config, lora_targets=GEMMA_LORA_TARGETS, merge_exporter="tunix.models.gemma3.params",
    rope_types=("default", "linear"), config_problems=_gemma3_problems,
    # A Gemma 3 multimodal text_config lists only what differs from Gemma3TextConfig's defaults.
    defaults=dict(vocab_size=262_208, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                  num_attention_heads=8, num_key_value_heads=4, head_dim=256, rms_norm_eps=1e-6,
                  query_pre_attn_scalar=256, sliding_window=4096, tie_word_embeddings=True,
                  hidden_activation="gelu_pytorch_tanh"))
