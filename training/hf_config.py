"""A Hugging Face checkpoint's config.json, as this project reads it (no JAX here).

tunix's offline loaders never read config.json, so training/hf_models.py builds the tunix
ModelConfig from what this module reads (transformers 4.x fields or 5.x rope_parameters). Where the
tunix model would compute something other than the HF model for a config.json value (every Gemma
hardcodes its norm epsilon, tunix's Qwen3 has no YaRN, ...), that value is refused with UnsupportedConfig
naming the field, instead of silently training a different network. RoPE's theta and Llama 3's "llama3"
scaling are honoured for every family (training/rope.py for the tunix attentions that hardcode them).
Gemma 1 ("gemma") and Gemma 2 ("gemma2") both run on tunix.models.gemma.
"""

from __future__ import annotations

import math


FAMILIES = {"gemma3_text": "gemma3", "gemma3": "gemma3", "qwen3": "qwen3", "llama": "llama3", "qwen2": "qwen2",
            "gemma": "gemma", "gemma2": "gemma2"}
_LOADERS = {"gemma3": "tunix.models.gemma3.params_safetensors", "qwen3": "tunix.models.qwen3.params",
            "llama3": "tunix.models.llama3.params", "qwen2": "tunix.models.qwen2.params",
            "gemma": "tunix.models.gemma.params_safetensors", "gemma2": "tunix.models.gemma.params_safetensors"}
_GEMMAS = ("gemma", "gemma2", "gemma3")
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
    "gemma": dict(vocab_size=256_000, hidden_size=3072, intermediate_size=24_576, num_hidden_layers=28,
                  num_attention_heads=16, num_key_value_heads=16, head_dim=256, rms_norm_eps=1e-6,
                  tie_word_embeddings=True, hidden_act="gelu_pytorch_tanh"),
    "gemma2": dict(vocab_size=256_000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                   num_attention_heads=8, num_key_value_heads=4, head_dim=256, rms_norm_eps=1e-6,
                   query_pre_attn_scalar=256, sliding_window=4096, final_logit_softcapping=30.0,
                   attn_logit_softcapping=50.0, tie_word_embeddings=True, hidden_activation="gelu_pytorch_tanh"),
}
# The rope_types each family computes as transformers does (tunix's Gemma3 scales linearly itself;
# training/rope.py computes "llama3"); every other family only the default.
ROPE_TYPES = {"gemma3": ("default", "linear"), "llama3": ("default", "llama3")}
LLAMA3_ROPE_FIELDS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
_GEMMA_NORM_EPS = 1e-6  # hardcoded in the RMSNorm of tunix's Gemma and Gemma3
_GEMMA3_PATTERN = 6  # tunix cycles 5 sliding-window layers, then 1 global layer
_TEXT_ONLY_PREFIXES = ("vision_tower.", "multi_modal_projector.", "model.vision_tower.", "model.multi_modal_projector.")


class UnsupportedConfig(ValueError):
    """config.json values the tunix model cannot honour; `problems` holds (field, value, why) for each."""

    def __init__(self, family: str, problems: list[tuple[str, object, str]]):
        self.family, self.problems = family, problems
        super().__init__(f"{family}: " + "; ".join(f"{field}={value!r}: {why}" for field, value, why in problems))

    def __reduce__(self):  # rebuilt from its own arguments (Ray pickles exceptions across processes)
        return type(self), (self.family, self.problems), self.__dict__


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


def given(c: dict, family: str, field: str):
    """A field whose null means something (no window, no soft-cap): HF's default only when it is absent."""
    return c[field] if field in c else _DEFAULTS[family].get(field)


def activation(c: dict, family: str) -> tuple[str, str]:
    """(field, activation) of the HF MLP. Gemma 1 hub configs say hidden_act "gelu" (written by transformers
    4.38.0.dev0) for the tanh-approximate GELU Gemma was trained with; transformers 4.39+ (PR #29402) read it
    so, and hidden_activation, when given, wins. (transformers 5.x's GemmaMLP reads hidden_act as written.)"""
    if family in ("gemma2", "gemma3"):
        return "hidden_activation", config_value(c, family, "hidden_activation")
    if family == "gemma" and c.get("hidden_activation") is not None:
        return "hidden_activation", c["hidden_activation"]
    act = config_value(c, family, "hidden_act")
    return "hidden_act", "gelu_pytorch_tanh" if family == "gemma" and act == "gelu" else act


def layer_types(c: dict, family: str) -> list[str]:
    """Gemma 2's layers: config.json's layer_types, or HF's default (sliding, global, sliding, ...)."""
    n = config_value(c, family, "num_hidden_layers")
    if family != "gemma2":
        return ["full_attention"] * n
    return list(c.get("layer_types") or ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n)])


def rope_settings(c: dict, family: str, kind: str = "full_attention") -> tuple[dict, str, str]:
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
    act_field, act = activation(c, family)
    want = "gelu_pytorch_tanh" if family in _GEMMAS else "silu"
    if act != want:
        refuse(act_field, act, f"tunix's {family} MLP always uses {want}")
    for field in ("attention_bias", "mlp_bias"):  # Qwen2's q/k/v biases are not this flag: tunix has them
        if c.get(field) and family != "qwen2":
            refuse(field, c[field], f"tunix's {family} has no biases there; they would be dropped")
    for kind in ("full_attention", "sliding_attention") if family == "gemma3" else ("full_attention",):
        problems += _rope_problems(c, family, kind)
    if family in ("qwen2", "qwen3") and c.get("use_sliding_window"):
        refuse("use_sliding_window", True, f"tunix's {family} has no sliding-window attention")
    if family not in ("gemma2", "gemma3") and any(t != "full_attention" for t in c.get("layer_types") or []):
        refuse("layer_types", c["layer_types"], f"tunix's {family} has only full-attention layers")
    if family in _GEMMAS:
        problems += _gemma_problems(c, family)
    if family == "gemma2":
        problems += _gemma2_problems(c)
    if family == "gemma3":
        problems += _gemma3_problems(c)
    return problems


def _rope_problems(c: dict, family: str, kind: str) -> list[tuple[str, object, str]]:
    rope, theta_field, type_field = rope_settings(c, family, kind)
    scaling_field = type_field.removesuffix(".rope_type")  # rope_scaling (4.x) or rope_parameters[.kind] (5.x)
    allowed, kind_of_rope = ROPE_TYPES.get(family, ("default",)), rope["rope_type"]
    problems = []
    if not _positive(rope["rope_theta"]):
        problems.append((theta_field, rope["rope_theta"], "must be a positive number"))
    if kind_of_rope not in allowed:
        problems.append((type_field, kind_of_rope, f"{family} RoPE here supports only rope_type "
                         f"{' / '.join(allowed)}"))
    elif kind_of_rope == "linear" and not (_positive(rope.get("factor")) and rope["factor"] >= 1):
        problems.append((type_field, rope, "a linear RoPE factor must be >= 1"))
    elif kind_of_rope == "llama3":  # transformers' _validate_llama3_rope_parameters, as refusals
        values = {name: rope.get(name) for name in LLAMA3_ROPE_FIELDS}
        for name, value in values.items():
            if not _positive(value):
                problems.append((f"{scaling_field}.{name}", value, "llama3 RoPE needs it, a positive number"))
        if all(_positive(v) for v in values.values()):
            if values["factor"] < 1:
                problems.append((f"{scaling_field}.factor", values["factor"], "a llama3 RoPE factor must be >= 1"))
            if values["high_freq_factor"] <= values["low_freq_factor"]:
                problems.append((f"{scaling_field}.high_freq_factor", values["high_freq_factor"],
                                 f"must be above low_freq_factor ({values['low_freq_factor']})"))
    return problems


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf


def _gemma_problems(c: dict, family: str) -> list[tuple[str, object, str]]:
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


def _gemma2_problems(c: dict) -> list[tuple[str, object, str]]:
    problems = []
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


def _gemma3_problems(c: dict) -> list[tuple[str, object, str]]:
    problems = []
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
