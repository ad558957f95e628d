"""Hugging Face decoder checkpoints (config.json + *.safetensors) as tunix nnx models, offline, float32.

tunix's AutoModel always goes to the hub, and its offline loaders never read config.json, so the tunix
ModelConfig is built here from config.json (transformers 4.x fields or 5.x rope_parameters). Where the
tunix model would compute something other than the HF model for a config.json value (tunix's Qwen3 and
Llama3 always use rope_theta 1e6, Gemma3 hardcodes its norm epsilon and layer pattern, ...), that value
is refused with UnsupportedConfig naming the field, instead of silently training a different network.
JAX and tunix are imported inside the functions that need them: importing this module stays cheap.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import numpy as np

FAMILIES = {"gemma3_text": "gemma3", "gemma3": "gemma3", "qwen3": "qwen3", "llama": "llama3", "qwen2": "qwen2"}
_LOADERS = {"gemma3": "tunix.models.gemma3.params_safetensors", "qwen3": "tunix.models.qwen3.params",
            "llama3": "tunix.models.llama3.params", "qwen2": "tunix.models.qwen2.params"}
# HF's defaults for fields a config.json may leave out (a Gemma 3 multimodal text_config lists only what
# differs from Gemma3TextConfig's defaults).
_DEFAULTS = {
    "gemma3": dict(vocab_size=262_208, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                   num_attention_heads=8, num_key_value_heads=4, head_dim=256, rms_norm_eps=1e-6,
                   query_pre_attn_scalar=256, sliding_window=4096, tie_word_embeddings=True,
                   hidden_activation="gelu_pytorch_tanh"),
    "qwen3": dict(head_dim=128, rms_norm_eps=1e-6, tie_word_embeddings=False, hidden_act="silu"),
    "llama3": dict(rms_norm_eps=1e-6, tie_word_embeddings=False, hidden_act="silu"),
    "qwen2": dict(rms_norm_eps=1e-6, tie_word_embeddings=False, hidden_act="silu"),
}
_TUNIX_ROPE_THETA = 1_000_000.0  # what tunix's Qwen3 and Llama3 attention always pass to apply_rope
_GEMMA3_NORM_EPS = 1e-6  # hardcoded in tunix's Gemma3 RMSNorm
_GEMMA3_PATTERN = 6  # tunix cycles 5 sliding-window layers, then 1 global layer
_TEXT_ONLY_PREFIXES = ("vision_tower.", "multi_modal_projector.", "model.vision_tower.", "model.multi_modal_projector.")


class UnsupportedConfig(ValueError):
    """config.json values the tunix model cannot honour; `problems` holds (field, value, why) for each."""

    def __init__(self, family: str, problems: list[tuple[str, object, str]]):
        self.family, self.problems = family, problems
        super().__init__(f"{family}: " + "; ".join(f"{field}={value!r}: {why}" for field, value, why in problems))


def text_config(config: dict) -> dict:
    """The decoder's fields: a multimodal Gemma 3 config.json nests them under text_config."""
    if config.get("model_type") == "gemma3" and isinstance(config.get("text_config"), dict):
        outer = {k: config[k] for k in ("tie_word_embeddings", "quantization_config") if k in config}
        return {**outer, **config["text_config"], "model_type": "gemma3_text"}
    return config


def family_of(config: dict) -> str:
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise ValueError(f"model_type {model_type!r} is not supported; supported: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[model_type]


def config_value(c: dict, family: str, field: str):
    """A text config field, or what HF assumes when config.json leaves it out."""
    value = c.get(field)
    if value is not None:
        return value
    if field == "head_dim" and family in ("llama3", "qwen2"):
        return c["hidden_size"] // c["num_attention_heads"]
    if field == "num_key_value_heads":
        return config_value(c, family, "num_attention_heads")
    return _DEFAULTS[family].get(field)


def _window(c: dict) -> int | None:
    """Gemma 3's sliding window: HF's default when absent, none when config.json says null."""
    return c.get("sliding_window", _DEFAULTS["gemma3"]["sliding_window"])


def _rope(c: dict, family: str, kind: str = "full_attention") -> tuple[dict, str, str]:
    """(settings with rope_type and rope_theta, the field naming the theta, the field naming the type)."""
    default_theta = 10_000.0 if family != "gemma3" or kind == "sliding_attention" else 1_000_000.0
    params = c.get("rope_parameters")
    if isinstance(params, dict):  # transformers 5.x; Gemma 3 holds one dict per layer type
        field = f"rope_parameters.{kind}" if family == "gemma3" else "rope_parameters"
        settings = (params.get(kind) or {}) if family == "gemma3" else params
        settings = {"rope_type": "default", "rope_theta": default_theta, **settings}
        return settings, f"{field}.rope_theta", f"{field}.rope_type"
    if family == "gemma3" and kind == "sliding_attention":  # 4.x: rope_scaling is for global layers only
        settings = {"rope_type": "default", "rope_theta": c.get("rope_local_base_freq", default_theta)}
        return settings, "rope_local_base_freq", "rope_local_base_freq"
    scaling = dict(c.get("rope_scaling") or {})  # older configs say "type" for "rope_type"
    theta = c.get("rope_theta", default_theta)
    settings = {"rope_type": scaling.pop("type", "default"), **scaling, "rope_theta": theta}
    return settings, "rope_theta", "rope_scaling"


def unsupported(family: str, config: dict) -> list[tuple[str, object, str]]:
    """(field, value, why) for every config.json value the family's tunix model would not honour."""
    c = text_config(config)
    problems = []

    def refuse(field, value, why):
        problems.append((field, value, why))

    if c.get("quantization_config"):
        refuse("quantization_config", c["quantization_config"], "tunix loads plain float weights, not quantized ones")
    n_heads, n_kv = config_value(c, family, "num_attention_heads"), config_value(c, family, "num_key_value_heads")
    if n_heads % n_kv:
        refuse("num_key_value_heads", n_kv, f"must divide num_attention_heads ({n_heads})")
    act_field = "hidden_activation" if family == "gemma3" else "hidden_act"
    act, want = config_value(c, family, act_field), "gelu_pytorch_tanh" if family == "gemma3" else "silu"
    if act != want:
        refuse(act_field, act, f"tunix's {family} MLP always uses {want}")
    for field in ("attention_bias", "mlp_bias"):  # Qwen2's q/k/v biases are not this flag: tunix has them
        if c.get(field) and family != "qwen2":
            refuse(field, c[field], f"tunix's {family} has no biases there; they would be dropped")
    for kind in ("full_attention", "sliding_attention") if family == "gemma3" else ("full_attention",):
        rope, theta_field, type_field = _rope(c, family, kind)
        allowed = ("default", "linear") if family == "gemma3" else ("default",)
        if rope["rope_type"] not in allowed:
            refuse(type_field, rope["rope_type"], f"tunix's {family} RoPE supports only {' / '.join(allowed)}")
        elif rope["rope_type"] == "linear" and not rope.get("factor", 0) >= 1:
            refuse(type_field, rope, "a linear RoPE factor must be >= 1")
        if family in ("qwen3", "llama3") and float(rope["rope_theta"]) != _TUNIX_ROPE_THETA:
            refuse(theta_field, rope["rope_theta"], f"tunix's {family} attention ignores its config and always "
                   f"uses rope_theta {_TUNIX_ROPE_THETA:g}")
    if family in ("qwen2", "qwen3") and c.get("use_sliding_window"):
        refuse("use_sliding_window", True, f"tunix's {family} has no sliding-window attention")
    if family != "gemma3" and any(t != "full_attention" for t in c.get("layer_types") or []):
        refuse("layer_types", c["layer_types"], f"tunix's {family} has only full-attention layers")
    if family == "gemma3":
        problems += _gemma3_problems(c)
    return problems


def _gemma3_problems(c: dict) -> list[tuple[str, object, str]]:
    problems = []
    eps = config_value(c, "gemma3", "rms_norm_eps")
    if eps != _GEMMA3_NORM_EPS:
        problems.append(("rms_norm_eps", eps, f"tunix's Gemma3 RMSNorm always uses {_GEMMA3_NORM_EPS:g}"))
    if not config_value(c, "gemma3", "tie_word_embeddings"):
        problems.append(("tie_word_embeddings", False,
                         "tunix's Gemma3 always decodes with the embedding; lm_head.weight would be ignored"))
    for field in ("final_logit_softcapping", "attn_logit_softcapping"):
        if c.get(field) is not None:
            problems.append((field, c[field], "tunix's Gemma3 does not soft-cap"))
    if c.get("use_bidirectional_attention"):
        problems.append(("use_bidirectional_attention", True, "tunix's Gemma3 text attention is causal"))
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
    if not _window(c):
        problems.append(("sliding_window", c.get("sliding_window"), "tunix's Gemma3 local layers need a window"))
    return problems


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

        full, local = _rope(c, family)[0], _rope(c, family, "sliding_attention")[0]
        by_head_dim = g("query_pre_attn_scalar") == g("head_dim")
        norm = gemma3.QueryPreAttentionNormalisation
        return gemma3.ModelConfig(
            **shape, num_embed=g("vocab_size"), sliding_window_size=_window(c),
            global_base_frequency=full["rope_theta"], local_base_frequency=local["rope_theta"],
            global_scale_factor=float(full.get("factor", 1.0)), local_scale_factor=float(local.get("factor", 1.0)),
            query_pre_attn_norm=norm.BY_ONE_OVER_SQRT_HEAD_DIM if by_head_dim
            else norm.BY_ONE_OVER_SQRT_EMBED_DIM_DIV_NUM_HEADS,
            param_dtype=jnp.float32)
    model_lib = importlib.import_module(f"tunix.models.{family}.model")
    common = dict(**shape, vocab_size=g("vocab_size"), rope_theta=_rope(c, family)[0]["rope_theta"],
                  norm_eps=g("rms_norm_eps"))
    if family == "llama3":  # tunix's Llama3 has no dtype fields: its parameters are float32
        return model_lib.ModelConfig(**common, weight_tying=bool(g("tie_word_embeddings")))
    return model_lib.ModelConfig(**common, use_tied_embedding=bool(g("tie_word_embeddings")),
                                 dtype=jnp.float32, param_dtype=jnp.float32)


def _headers(folder: Path) -> dict[Path, dict]:
    """Each top-level *.safetensors file's header (what tunix globs), without reading tensors."""
    headers = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            headers[path] = {k: v for k, v in json.loads(f.read(size)).items() if k != "__metadata__"}
    if not headers:
        raise FileNotFoundError(f"{folder}: no *.safetensors weights")
    return headers


def load_hf_model(folder: Path, config: dict):
    """The family's tunix nnx model with every weight of the folder loaded (float32, one device, no mesh)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    family = family_of(config)
    model_config = tunix_config(family, config)
    headers = _headers(folder)
    # tunix's fast loader reads a whole file as the dtype of its first tensor: use the slow, per-tensor
    # one when a file mixes dtypes.
    mixed = any(len({t["dtype"] for t in h.values()}) > 1 for h in headers.values())
    loader = importlib.import_module(_LOADERS[family])
    model = loader.create_model_from_safe_tensors(str(folder), model_config, mesh=None, dtype=jnp.float32,
                                                  mode="original" if mixed else "optimized")
    # A tensor missing from the files fails the load; one tunix does not map, or maps to no parameter (extra
    # layers, lm_head with tied embeddings, biases tunix lacks), is skipped silently: count what landed.
    in_files = {name: math.prod(t["shape"]) for h in headers.values() for name, t in h.items()
                if not name.startswith(_TEXT_ONLY_PREFIXES)}
    held = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    if held != sum(in_files.values()):
        raise ValueError(f"{folder}: the safetensors hold {sum(in_files.values())} weights, the tunix {family} model "
                         f"took {held}: tensors were ignored. Check num_hidden_layers and tie_word_embeddings; names "
                         f"tunix cannot place: {_unplaced(loader, model_config, in_files)[:5]}")
    return model


def _unplaced(loader, model_config, names) -> list[str]:
    """Tensor names tunix's key mapping skips or marks unused (a message for the failure path only)."""
    from tunix.utils.torch_utils import torch_key_to_jax_key

    key_map = loader._get_key_and_transform_mapping(model_config)
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
    # All four tunix families take (tokens, positions, cache, attention_mask [B, T, S]) positionally.
    logits, _ = model(tokens, positions, None, causal)
    return np.asarray(logits, dtype=np.float32)
