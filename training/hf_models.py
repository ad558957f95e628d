"""Hugging Face decoder checkpoints (config.json + *.safetensors) as tunix nnx models, offline, float32.

tunix's AutoModel always goes to the hub, and its offline loaders never read config.json: the tunix
ModelConfig is built here from what training/hf_config.py reads and accepts. JAX and tunix are
imported inside the functions that need them: importing this module stays cheap.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np

from training.hf_checkpoint import safetensors_header
from training.hf_config import (
    _LOADERS, _TEXT_ONLY_PREFIXES, UnsupportedConfig, config_value, family_of, given, layer_types, rope_settings,
    text_config,
    unsupported,
)


def tunix_config(family: str, config: dict):
    """The tunix ModelConfig (float32 parameters) for config.json; UnsupportedConfig when tunix cannot honour it."""
    import jax.numpy as jnp

    problems = unsupported(family, config)
    if problems:
        raise UnsupportedConfig(family, problems)
    c = text_config(config)

    def g(field):
        return config_value(c, family, field)

    shape = dict(num_layers=g("num_hidden_layers"), embed_dim=g("hidden_size"), hidden_dim=g("intermediate_size"),
                 num_heads=g("num_attention_heads"), head_dim=g("head_dim"), num_kv_heads=g("num_key_value_heads"))
    if family == "gemma3":
        from tunix.models.gemma3 import model as gemma3

        full, local = rope_settings(c, family)[0], rope_settings(c, family, "sliding_attention")[0]
        by_head_dim = g("query_pre_attn_scalar") == g("head_dim")
        norm = gemma3.QueryPreAttentionNormalisation
        return gemma3.ModelConfig(
            **shape, num_embed=g("vocab_size"), sliding_window_size=given(c, family, "sliding_window"),
            global_base_frequency=full["rope_theta"], local_base_frequency=local["rope_theta"],
            global_scale_factor=float(full.get("factor", 1.0)), local_scale_factor=float(local.get("factor", 1.0)),
            query_pre_attn_norm=norm.BY_ONE_OVER_SQRT_HEAD_DIM if by_head_dim
            else norm.BY_ONE_OVER_SQRT_EMBED_DIM_DIV_NUM_HEADS,
            param_dtype=jnp.float32)
    if family in ("gemma", "gemma2"):  # one tunix model; Gemma 2 adds post-norms, soft-caps and local layers
        from tunix.models.gemma import model as gemma

        v2, kinds = family == "gemma2", layer_types(c, family)
        local, full = gemma.AttentionType.LOCAL_SLIDING, gemma.AttentionType.GLOBAL
        return gemma.ModelConfig(  # no dtype fields: its parameters are float32
            **shape, num_embed=g("vocab_size"), use_post_attn_norm=v2, use_post_ffw_norm=v2,
            attention_types=[local if kind == "sliding_attention" else full for kind in kinds],
            sliding_window_size=given(c, family, "sliding_window") if "sliding_attention" in kinds else None,
            final_logit_softcap=given(c, family, "final_logit_softcapping") if v2 else None,
            attn_logits_soft_cap=given(c, family, "attn_logit_softcapping") if v2 else None)
    model_lib = importlib.import_module(f"tunix.models.{family}.model")
    common = dict(**shape, vocab_size=g("vocab_size"), rope_theta=rope_settings(c, family)[0]["rope_theta"],
                  norm_eps=g("rms_norm_eps"))
    if family == "llama3":  # tunix's Llama3 has no dtype fields: its parameters are float32
        return model_lib.ModelConfig(**common, weight_tying=bool(g("tie_word_embeddings")))
    return model_lib.ModelConfig(**common, use_tied_embedding=bool(g("tie_word_embeddings")),
                                 dtype=jnp.float32, param_dtype=jnp.float32)


def _headers(folder: Path) -> dict[Path, dict]:
    """Each top-level *.safetensors file's header (what tunix globs), read and checked by
    training/hf_checkpoint.py, without reading tensors."""
    headers = {path: {k: v for k, v in safetensors_header(path).items() if k != "__metadata__"}
               for path in sorted(Path(folder).glob("*.safetensors"))}
    if not headers:
        raise FileNotFoundError(f"{folder}: no *.safetensors weights")
    return headers


def load_hf_model(folder: Path, config: dict):
    """The family's tunix nnx model with every weight of the folder loaded (float32, one device, no mesh)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from training import rope

    family = family_of(config)
    model_config = tunix_config(family, config)
    headers = _headers(folder)
    # tunix's fast loader reads a whole file as the dtype of its first tensor: use the slow, per-tensor
    # one when a file mixes dtypes.
    mixed = any(len({t["dtype"] for t in h.values()}) > 1 for h in headers.values())
    loader = importlib.import_module(_LOADERS[family])
    mode = "original" if mixed else "optimized"
    if family in ("gemma", "gemma2"):  # tunix's create_model_from_safe_tensors knows only Gemma 2's key table
        from tunix.models import safetensors_loader
        from tunix.models.gemma import model as gemma

        model = safetensors_loader.load_and_create_model(
            str(folder), gemma.Gemma, model_config, lambda cfg: _key_mapping(family, loader, cfg), mesh=None,
            preprocess_fn=loader._make_preprocess_fn(model_config), dtype=jnp.float32, mode=mode)
    else:
        model = loader.create_model_from_safe_tensors(str(folder), model_config, mesh=None, dtype=jnp.float32,
                                                      mode=mode)
    if family in rope.FAMILIES:  # tunix's attention hardcodes theta (and knows no llama3 scaling) there
        rope.configure_rope(model, rope_settings(text_config(config), family)[0])
    # A tensor missing from the files fails the load; one tunix does not map, or maps to no parameter (extra
    # layers, lm_head with tied embeddings, biases tunix lacks), is skipped silently: count what landed.
    in_files = {name: math.prod(t["shape"]) for h in headers.values() for name, t in h.items()
                if not name.startswith(_TEXT_ONLY_PREFIXES)}
    held = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    if held != sum(in_files.values()):
        raise ValueError(f"{folder}: the safetensors hold {sum(in_files.values())} weights, the tunix {family} model "
                         f"took {held}: tensors were ignored. Check num_hidden_layers and tie_word_embeddings; names "
                         f"tunix cannot place: {_unplaced(family, loader, model_config, in_files)[:5]}")
    return model


def _key_mapping(family: str, loader, model_config) -> dict:
    """tunix's HF-name -> tunix-name table. tunix's Gemma table is Gemma 2's, where post_attention_layernorm
    normalises the attention output; Gemma 1's post_attention_layernorm is the norm before the MLP."""
    mapping = loader._get_key_and_transform_mapping(model_config)
    if family == "gemma":
        mapping[r"model\.layers\.([0-9]+)\.post_attention_layernorm\.weight"] = (r"layers.\1.pre_ffw_norm.scale", None)
    return mapping


def _unplaced(family: str, loader, model_config, names) -> list[str]:
    """Tensor names tunix's key mapping skips or marks unused (a message for the failure path only)."""
    from tunix.utils.torch_utils import torch_key_to_jax_key

    key_map = _key_mapping(family, loader, model_config)
    unplaced = []
    for name in sorted(names):
        try:
            target, _ = torch_key_to_jax_key(key_map, name)
        except ValueError:
            target = "unused."
        if target.startswith("unused."):
            unplaced.append(name)
    return unplaced


def forward_logits(model, family: str, token_ids: np.ndarray) -> np.ndarray:
    """[B, T, vocab] float32 logits of a plain forward pass: positions 0..T-1, causal mask, no cache."""
    import jax.numpy as jnp

    if family not in _LOADERS:
        raise ValueError(f"family must be one of {', '.join(_LOADERS)}, got {family!r}")
    tokens = jnp.asarray(token_ids, dtype=jnp.int32)
    batch, length = tokens.shape
    positions = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (batch, length))
    causal = jnp.broadcast_to(jnp.tril(jnp.ones((length, length), dtype=jnp.bool_)), (batch, length, length))
    # Every tunix family here takes (tokens, positions, cache, attention_mask [B, T, S]) positionally.
    logits, _ = model(tokens, positions, None, causal)
    return np.asarray(logits, dtype=np.float32)
