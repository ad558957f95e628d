"""A Hugging Face checkpoint's config.json, as this project reads it (no JAX here).

tunix's offline loaders never read config.json, so training/hf_models.py builds the tunix
ModelConfig from what this module reads (transformers 4.x fields or 5.x rope_parameters). Where the
tunix model would compute something other than the HF model for a config.json value (every Gemma
hardcodes its norm epsilon, tunix's Qwen3 has no YaRN, ...), that value is refused with UnsupportedConfig
naming the field, instead of silently training a different network. RoPE's theta and Llama 3's "llama3"
scaling are honoured for every family (training/rope.py for the tunix attentions that hardcode them).
Gemma 1 ("gemma") and Gemma 2 ("gemma2") both run on tunix.models.gemma. What differs per family (HF
defaults, RoPE types, the refusals only one family needs) is in its file under training/families/.
"""

from __future__ import annotations

import math

from training.families import family as _family
from training.families import family_of  # noqa: F401  other modules import it from here

_GEMMAS = ("gemma", "gemma2", "gemma3")
LLAMA3_ROPE_FIELDS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
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


def config_value(c: dict, family: str, field: str):
    """A text config field, or what HF assumes when config.json leaves it out."""
    value = c.get(field)
    if value is not None:
        return value
    if field == "head_dim" and family in ("llama3", "qwen2"):
        return c["hidden_size"] // c["num_attention_heads"]
    if field == "num_key_value_heads":
        return config_value(c, family, "num_attention_heads")
    return _family(family).defaults.get(field)


def given(c: dict, family: str, field: str):
    """A field whose null means something (no window, no soft-cap): HF's default only when it is absent."""
    return c[field] if field in c else _family(family).defaults.get(field)


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
    return problems + _family(family).config_problems(family, c)


def _rope_problems(c: dict, family: str, kind: str) -> list[tuple[str, object, str]]:
    rope, theta_field, type_field = rope_settings(c, family, kind)
    scaling_field = type_field.removesuffix(".rope_type")  # rope_scaling (4.x) or rope_parameters[.kind] (5.x)
    allowed, kind_of_rope = _family(family).rope_types, rope["rope_type"]
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
