"""What a GGUF header says, as a Hugging Face config.json, and whether it can be converted at all.

Everything here reads the header only (plus the tiny rope_freqs tensor), so the gateway can refuse
a file a trial could not convert before anything is published.
"""

from __future__ import annotations

import math

import numpy as np
from gguf import GGMLQuantizationType

from training.gguf.header import BrokenGguf, GgufHeader
from training.gguf.tokenizer import tokenizer_problem
from training.safe_files import open_regular

# GGUF architecture -> (HF model_type, HF architectures). Gemma GGUFs carry a SentencePiece vocabulary
# (tokenizer.ggml.model "llama"), which is not converted yet (training/gguf/tokenizer.py).
ARCHITECTURES = {"llama": ("llama", "LlamaForCausalLM"), "qwen2": ("qwen2", "Qwen2ForCausalLM"),
                 "qwen3": ("qwen3", "Qwen3ForCausalLM")}
# What gguf.quants.dequantize (gguf 0.19.0) turns into floats; it raises for Q8_1, Q8_K, Q1_0, the
# integer types and F64.
DEQUANTIZABLE = frozenset(t for t in GGMLQuantizationType if t.name not in (
    "Q8_1", "Q8_K", "Q1_0", "I8", "I16", "I32", "I64", "F64"))
_ROPE_FREQS = "rope_freqs.weight"


def checked(header: GgufHeader) -> None:
    """BrokenGguf naming what cannot be converted: the architecture, a tensor's type, the tokenizer."""
    arch = header.architecture
    if arch not in ARCHITECTURES:
        raise BrokenGguf(header.path, f"general.architecture {arch!r} is not supported; supported: "
                         f"{', '.join(ARCHITECTURES)}")
    unsupported = sorted({t.qtype.name for t in header.tensors.values() if t.qtype not in DEQUANTIZABLE})
    if unsupported:
        names = ", ".join(sorted(t.name for t in DEQUANTIZABLE))
        raise BrokenGguf(header.path, f"quantization {', '.join(unsupported)} cannot be dequantized (tensor "
                         f"{next(t.name for t in header.tensors.values() if t.qtype.name in unsupported)!r}); "
                         f"supported: {names}")
    problem = tokenizer_problem(header)
    if problem:
        raise BrokenGguf(header.path, problem)


def hf_config(header: GgufHeader) -> dict:
    """config.json of the converted folder (checked(header) first)."""
    checked(header)
    arch = header.architecture
    model_type, architecture = ARCHITECTURES[arch]
    need = lambda key: _positive(header, key)  # noqa: E731
    heads = need("attention.head_count")
    hidden = need("embedding_length")
    vocab = len(header.metadata["tokenizer.ggml.tokens"])
    config = {
        "architectures": [architecture], "model_type": model_type,
        "hidden_size": hidden, "intermediate_size": need("feed_forward_length"),
        "num_hidden_layers": _positive(header, "block_count", limit=1024), "num_attention_heads": heads,
        "num_key_value_heads": _positive(header, "attention.head_count_kv", heads),
        "head_dim": _positive(header, "attention.key_length", hidden // heads),
        "max_position_embeddings": _positive(header, "context_length", 2048),
        "rms_norm_eps": _float32(header, "attention.layer_norm_rms_epsilon", 1e-6),
        "rope_theta": _float32(header, "rope.freq_base", 10_000.0),
        # q/k/v biases: Qwen2 has them (tunix loads them); elsewhere hf_config refuses them rather than drop them
        "vocab_size": vocab, "hidden_act": "silu", "attention_bias": "blk.0.attn_q.bias" in header.tensors,
        "mlp_bias": False,
        # llama.cpp writes no output.weight when the embedding is tied.
        "tie_word_embeddings": "output.weight" not in header.tensors,
        "torch_dtype": "float32",
    }
    for key in ("bos", "eos", "padding"):
        token_id = header.metadata.get(f"tokenizer.ggml.{key}_token_id")
        if isinstance(token_id, int) and 0 <= token_id < vocab:
            config[f"{'pad' if key == 'padding' else key}_token_id"] = token_id
    if model_type == "qwen2":
        config["use_sliding_window"] = False
    scaling = _rope_scaling(header, config)
    if scaling:
        config["rope_scaling"] = scaling
    return config


def _float32(header: GgufHeader, key: str, default: float) -> float:
    """A positive float32 from the metadata, as the decimal it was written from (1e-05, not
    9.999999747378752e-06)."""
    value = header.arch_value(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 3.4e38:
        raise BrokenGguf(header.path, f"{header.architecture}.{key} must be a positive finite number, got {value!r}")
    return float(repr(np.float32(value)).removeprefix("np.float32(").removesuffix(")"))


def _positive(header: GgufHeader, key: str, default: int | None = None, limit: int = 2**24) -> int:
    value = header.arch_value(key, default)
    if isinstance(value, np.ndarray) and value.size and np.all(value == value.flat[0]):
        value = int(value.flat[0])  # a per-layer array with one value (head_count_kv in some files)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= limit:
        raise BrokenGguf(header.path, f"{header.architecture}.{key} must be an integer from 1 to {limit:,}, "
                         f"got {value!r}")
    return value


def _rope_scaling(header: GgufHeader, config: dict) -> dict | None:
    """Llama 3.1/3.2's "llama3" scaling is not in the metadata: llama.cpp writes its per-frequency divisors as
    rope_freqs.weight, from which the four values are recovered (and checked by recomputing them)."""
    kind = header.arch_value("rope.scaling.type")
    if isinstance(kind, str) and kind not in ("none", ""):
        factor = header.arch_value("rope.scaling.factor")
        scaling = {"rope_type": kind, **({"factor": float(factor)} if factor is not None else {})}
        original = header.arch_value("rope.scaling.original_context_length")
        if original is not None:
            scaling["original_max_position_embeddings"] = int(original)
        return scaling
    info = header.tensors.get(_ROPE_FREQS)
    if info is None:
        return None
    expected = (config["head_dim"] // 2,)
    if header.architecture != "llama" or info.qtype != GGMLQuantizationType.F32 or info.shape != expected:
        raise BrokenGguf(header.path, f"{_ROPE_FREQS} ({info.qtype.name} {list(info.shape)}) is only read as Llama 3 "
                         "RoPE scaling (F32, head_dim/2 values)")
    with open_regular(header.path, header.file_size) as f:
        f.seek(info.offset)
        divisors = np.frombuffer(f.read(info.nbytes), dtype="<f4").astype(np.float64)
    return llama3_scaling(divisors, config["rope_theta"], config["head_dim"], header)


def llama3_divisors(theta: float, head_dim: int, factor: float, low: float, high: float, original: int) -> np.ndarray:
    """llama.cpp's rope_freqs for transformers' "llama3" scaling (LlamaModel.generate_extra_tensors)."""
    freqs = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelen = 2 * math.pi / freqs
    smooth = (original / wavelen - low) / (high - low)
    out = 1 / ((1 - smooth) / factor + smooth)
    return np.where(wavelen < original / high, 1.0, np.where(wavelen > original / low, factor, out))


def llama3_scaling(divisors: np.ndarray, theta: float, head_dim: int, header: GgufHeader) -> dict:
    factor = float(divisors.max())
    freqs = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    middle = (divisors > 1 + 1e-6) & (divisors < factor * (1 - 1e-6))
    low, high, original = 1.0, 4.0, 8192  # Meta's values, used when no frequency lies between the bands
    if factor > 1 and middle.sum() >= 2:
        # smooth = (original * freq / 2pi - low) / (high - low), linear in freq; only the ratios
        # low/original and high/original matter, so low is taken as 1 (as every Llama 3 release has it).
        smooth = (1 / divisors[middle] - 1 / factor) / (1 - 1 / factor)
        slope, intercept = np.polyfit(freqs[middle] / (2 * math.pi), smooth, 1)
        span = -1.0 / intercept
        low, high, original = 1.0, round(float(1.0 + span), 4), int(round(slope * span))
    recomputed = llama3_divisors(theta, head_dim, factor, low, high, original)
    if factor <= 1 or not np.allclose(recomputed, divisors, rtol=1e-5, atol=1e-6):
        raise BrokenGguf(header.path, f"{_ROPE_FREQS} is not Llama 3 RoPE scaling (factor {factor:g}); "
                         "no other RoPE scaling is read from it")
    return {"rope_type": "llama3", "factor": round(factor, 6), "low_freq_factor": low, "high_freq_factor": high,
            "original_max_position_embeddings": original}
