"""An independent numpy forward pass of HF decoder checkpoints, from the safetensors tensors and config.json.

Written from the Hugging Face modeling code (transformers 5.x: modeling_gemma3, modeling_gemma2,
modeling_gemma, modeling_qwen3, modeling_llama, modeling_qwen2), not from tunix, so it can judge tunix's
weight mapping. Everything runs in float64: it is the exact answer that float32 implementations are
compared against. One deliberate exception: Gemma 1's activation follows transformers 4.39+ (PR #29402),
where a config's legacy hidden_act "gelu" means the tanh-approximate GELU Gemma was trained with and
hidden_activation, when given, wins; transformers 5.x's GemmaMLP applies hidden_act as written (exact GELU).

    logits = forward(load_tensors(folder), json.load(config.json), token_ids)   # [B, T, vocab]

Positions are 0..T-1 for every row and attention is causal (no padding, no cache).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

_MODEL_TYPES = {"gemma3_text": "gemma3", "gemma3": "gemma3", "qwen3": "qwen3", "llama": "llama3", "qwen2": "qwen2",
                "gemma": "gemma", "gemma2": "gemma2"}
# Gemma 2's defaults (Gemma2Config) for fields whose absence is not "none"; an explicit null is none.
_GEMMA2_DEFAULTS = {"attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "sliding_window": 4096,
                    "query_pre_attn_scalar": 256}


def load_tensors(folder: Path) -> dict[str, np.ndarray]:
    """Every tensor of the folder's *.safetensors, as float64 (bfloat16 files are widened exactly)."""
    from safetensors import safe_open

    tensors = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(path), framework="numpy") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not iterable
                tensors[name] = np.asarray(f.get_tensor(name)).astype(np.float64)
    return tensors


def forward(tensors: dict[str, np.ndarray], config: dict, token_ids: np.ndarray) -> np.ndarray:
    """Logits [B, T, vocab] (float64) of the HF model these tensors and this config.json describe."""
    if config.get("model_type") == "gemma3" and "text_config" in config:  # multimodal: run the text tower
        config = {"tie_word_embeddings": config.get("tie_word_embeddings", True), **config["text_config"]}
        tensors = {k.removeprefix("language_model."): v for k, v in tensors.items()}
        config["model_type"] = "gemma3_text"
    family = _MODEL_TYPES[config["model_type"]]
    if family == "gemma2":
        config = {**_GEMMA2_DEFAULTS, **config}
    gemma = family in ("gemma", "gemma2", "gemma3")  # (1 + w) norms, sqrt(hidden) embedding scale, tied head
    sandwich = family in ("gemma2", "gemma3")  # norms around each sub-block, soft-caps; Gemma 1 is laid out like Llama
    ids = np.asarray(token_ids)
    _, t_len = ids.shape
    d = config["hidden_size"]
    n_heads = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads") or n_heads
    head_dim = config.get("head_dim") or (256 if gemma else d // n_heads)  # Gemma configs default to 256
    eps = config.get("rms_norm_eps", 1e-6)
    positions = np.arange(t_len, dtype=np.float64)

    embed = tensors["model.embed_tokens.weight"]
    x = embed[ids]
    if gemma:  # GemmaTextScaledWordEmbedding and its Gemma 2 / 3 versions
        x = x * math.sqrt(d)

    layer_types = _layer_types(config, family)
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."

        def w(name, p=p):
            return tensors[p + name]

        kind = layer_types[i]
        inv_freq = _inv_freq(config, family, kind, head_dim)

        h = _rms_norm(x, w("input_layernorm.weight"), eps, gemma)
        q = _linear(h, tensors, p + "self_attn.q_proj").reshape(*h.shape[:2], n_heads, head_dim)
        k = _linear(h, tensors, p + "self_attn.k_proj").reshape(*h.shape[:2], n_kv, head_dim)
        v = _linear(h, tensors, p + "self_attn.v_proj").reshape(*h.shape[:2], n_kv, head_dim)
        if p + "self_attn.q_norm.weight" in tensors:  # Qwen3 and Gemma3 normalise q and k per head
            q = _rms_norm(q, w("self_attn.q_norm.weight"), eps, gemma)
            k = _rms_norm(k, w("self_attn.k_norm.weight"), eps, gemma)
        q, k = _rope(q, positions, inv_freq), _rope(k, positions, inv_freq)
        k, v = np.repeat(k, n_heads // n_kv, axis=2), np.repeat(v, n_heads // n_kv, axis=2)  # repeat_kv

        scaling = config.get("query_pre_attn_scalar", head_dim) ** -0.5 if sandwich else head_dim**-0.5
        scores = np.einsum("btnh,bsnh->bnts", q, k) * scaling
        if sandwich and config.get("attn_logit_softcapping"):
            cap = config["attn_logit_softcapping"]
            scores = np.tanh(scores / cap) * cap
        query, key = np.arange(t_len)[:, None], np.arange(t_len)[None, :]
        allowed = key <= query
        if kind == "sliding_attention":  # the window holds the query and the sliding_window - 1 before it
            allowed &= key > query - config["sliding_window"]
        scores = np.where(allowed, scores, -np.inf)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        attn = np.einsum("bnts,bsnh->btnh", probs, v).reshape(*h.shape[:2], n_heads * head_dim)
        attn = _linear(attn, tensors, p + "self_attn.o_proj")

        if sandwich:  # sandwich norms: normalise each sub-block's output before the residual add
            x = x + _rms_norm(attn, w("post_attention_layernorm.weight"), eps, gemma)
            h = _rms_norm(x, w("pre_feedforward_layernorm.weight"), eps, gemma)
            x = x + _rms_norm(_mlp(h, tensors, p, family, config), w("post_feedforward_layernorm.weight"), eps, gemma)
        else:
            x = x + attn
            h = _rms_norm(x, w("post_attention_layernorm.weight"), eps, gemma)
            x = x + _mlp(h, tensors, p, family, config)

    x = _rms_norm(x, tensors["model.norm.weight"], eps, gemma)
    tied = config.get("tie_word_embeddings", gemma)
    head = embed if tied or "lm_head.weight" not in tensors else tensors["lm_head.weight"]
    logits = x @ head.T
    if sandwich and config.get("final_logit_softcapping"):
        cap = config["final_logit_softcapping"]
        logits = np.tanh(logits / cap) * cap
    return logits


def _linear(x: np.ndarray, tensors: dict, prefix: str) -> np.ndarray:
    """nn.Linear: x @ W.T (+ b); HF stores W as [out, in]."""
    y = x @ tensors[prefix + ".weight"].T
    return y + tensors[prefix + ".bias"] if prefix + ".bias" in tensors else y


def _rms_norm(x: np.ndarray, weight: np.ndarray, eps: float, gemma: bool) -> np.ndarray:
    normed = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return normed * (1.0 + weight) if gemma else normed * weight  # Gemma stores the offset from 1


def _mlp(h: np.ndarray, tensors: dict, p: str, family: str, config: dict) -> np.ndarray:
    if family in ("gemma2", "gemma3"):
        act = config.get("hidden_activation", "gelu_pytorch_tanh")
    elif family == "gemma":  # transformers 4.39+: hidden_activation, else tanh GELU for the legacy "gelu"
        act = config.get("hidden_activation") or config.get("hidden_act", "gelu_pytorch_tanh")
        act = "gelu_pytorch_tanh" if act == "gelu" and not config.get("hidden_activation") else act
    else:
        act = config.get("hidden_act", "silu")
    gate = _linear(h, tensors, p + "mlp.gate_proj")
    if act == "silu":  # SwiGLU
        gate = gate / (1.0 + np.exp(-gate))
    elif act == "gelu_pytorch_tanh":  # GeGLU with the tanh approximation
        gate = 0.5 * gate * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (gate + 0.044715 * gate**3)))
    elif act == "gelu":  # exact (erf) GeGLU
        gate = 0.5 * gate * (1.0 + np.vectorize(math.erf)(gate / math.sqrt(2.0)))
    else:
        raise NotImplementedError(f"activation {act!r}")
    return _linear(gate * _linear(h, tensors, p + "mlp.up_proj"), tensors, p + "mlp.down_proj")


def _layer_types(config: dict, family: str) -> list[str]:
    n = config["num_hidden_layers"]
    if config.get("layer_types") and family != "gemma":  # GemmaConfig has no layer types
        return list(config["layer_types"])
    if family == "gemma2":  # Gemma2Config: sliding, full, sliding, ...
        return ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n)]
    if family == "gemma3":
        pattern = config.get("sliding_window_pattern", config.get("_sliding_window_pattern", 6))
        return ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n)]
    if family in ("qwen2", "qwen3") and config.get("use_sliding_window") and config.get("sliding_window"):
        start = config.get("max_window_layers", n)
        return ["sliding_attention" if i >= start else "full_attention" for i in range(n)]
    return ["full_attention"] * n


def _rope_settings(config: dict, family: str, kind: str) -> dict:
    """{rope_type, rope_theta, factor, ...} for a layer type, from either config.json format."""
    params = config.get("rope_parameters")
    if isinstance(params, dict):  # transformers 5.x
        if family == "gemma3":
            params = params.get(kind, {})
        return {"rope_type": "default", **params}
    if family == "gemma3" and kind == "sliding_attention":  # 4.x: local layers never scale
        return {"rope_type": "default", "rope_theta": config.get("rope_local_base_freq", 10_000.0)}
    scaling = dict(config.get("rope_scaling") or {})
    scaling.setdefault("rope_type", scaling.pop("type", "default"))
    default_theta = 1_000_000.0 if family == "gemma3" else 10_000.0
    return {**scaling, "rope_theta": config.get("rope_theta", default_theta)}


def _inv_freq(config: dict, family: str, kind: str, head_dim: int) -> np.ndarray:
    rope = _rope_settings(config, family, kind)
    theta = float(rope["rope_theta"])
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    kind_of_rope = rope["rope_type"]
    if kind_of_rope == "linear":
        inv_freq = inv_freq / rope["factor"]
    elif kind_of_rope == "llama3":  # _compute_llama3_parameters
        factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
        old_context = rope["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        scaled = np.where(wavelen > old_context / low, inv_freq / factor, inv_freq)
        smooth = (old_context / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old_context / high) & (wavelen <= old_context / low)
        inv_freq = np.where(medium, smoothed, scaled)
    elif kind_of_rope != "default":
        raise NotImplementedError(f"rope_type {kind_of_rope!r}")
    return inv_freq


def _rope(x: np.ndarray, positions: np.ndarray, inv_freq: np.ndarray) -> np.ndarray:
    """rotate_half RoPE on [B, T, heads, head_dim]: the two halves of each head form the pairs."""
    angles = positions[:, None] * inv_freq[None, :]  # [T, head_dim/2]
    cos = np.concatenate([np.cos(angles)] * 2, axis=-1)[None, :, None, :]
    sin = np.concatenate([np.sin(angles)] * 2, axis=-1)[None, :, None, :]
    half = x.shape[-1] // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin
