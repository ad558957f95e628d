"""A GGUF file's tensors under their Hugging Face names, dequantized to float32 one at a time.

Names go through gguf-py's own tensor name map (HF name -> GGUF name, inverted here), so they are
the ones llama.cpp's converter wrote. llama.cpp permutes the rows of attn_q / attn_k of Llama-family
models (LlamaModel.permute in convert_hf_to_gguf.py: each head's two rotary halves interleaved; k with
the KV head count) for its own RoPE kernel; HF's rotate_half wants them back, so it is undone here.
Qwen 2/3 are written unpermuted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from gguf import MODEL_ARCH_NAMES, get_tensor_name_map
from gguf.quants import dequantize

from training.gguf.header import BrokenGguf, GgufHeader, TensorInfo

_ARCH = {name: arch for arch, name in MODEL_ARCH_NAMES.items()}
_GLOBAL = ("model.embed_tokens", "model.norm", "lm_head")
_LAYER = ("input_layernorm", "post_attention_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
          "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "self_attn.q_norm", "self_attn.k_norm")
_SKIPPED = ("rope_freqs.weight",)  # read into config.json's rope_scaling (training/gguf/config.py)
_PERMUTED = ("llama",)


@dataclass(frozen=True)
class Planned:
    """One HF tensor: where it comes from and its HF shape (numpy order: GGUF's dimensions reversed)."""

    hf_name: str
    info: TensorInfo
    shape: tuple[int, ...]
    heads: int | None  # the head count its rows are permuted with; None: not permuted


def plan(header: GgufHeader, config: dict) -> list[Planned]:
    """Every tensor of the file under its HF name; BrokenGguf for one that has none (nothing is dropped)."""
    arch, layers = header.architecture, config["num_hidden_layers"]
    names = get_tensor_name_map(_ARCH[arch], layers)
    to_hf = {}
    for base in (*_GLOBAL, *(f"model.layers.{i}.{part}" for i in range(layers) for part in _LAYER)):
        gguf_base = names.get_name(base)
        if gguf_base is not None:
            for suffix in (".weight", ".bias"):
                to_hf[gguf_base + suffix] = base + suffix
    planned = []
    for name, info in header.tensors.items():
        if name in _SKIPPED:
            continue
        if name not in to_hf:
            raise BrokenGguf(header.path, f"tensor {name!r} has no Hugging Face counterpart in a {arch} model")
        heads = None
        shape = tuple(reversed(info.shape))
        if arch in _PERMUTED and name.endswith(("attn_q.weight", "attn_k.weight")):
            heads = config["num_attention_heads"] if "attn_q" in name else config["num_key_value_heads"]
            if shape[0] != heads * config["head_dim"]:
                raise BrokenGguf(header.path, f"tensor {name!r} has {shape[0]} rows, not {heads} heads of "
                                 f"{config['head_dim']}")
        planned.append(Planned(to_hf[name], info, shape, heads))
    return sorted(planned, key=lambda p: p.hf_name)


def unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """The inverse of llama.cpp's LlamaModel.permute: reshape(heads, 2, rows/heads/2, ...).swapaxes(1, 2)."""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def tensors(header: GgufHeader, data: np.ndarray, planned: list[Planned]) -> Iterator[tuple[Planned, np.ndarray]]:
    """(tensor, float32 values) one at a time; `data` is the whole file as uint8 (a memory map)."""
    for p in planned:
        info = p.info
        raw = data[info.offset:info.offset + info.nbytes]
        rows = int(np.prod(p.shape[:-1], dtype=np.int64))
        values = dequantize(raw.reshape(rows, info.nbytes // max(rows, 1)), info.qtype).reshape(p.shape)
        values = values.astype(np.float32, copy=False)
        if p.heads is not None:
            values = unpermute(values, p.heads)
        if not np.isfinite(values).all():
            raise BrokenGguf(header.path, f"tensor {info.name!r} holds NaN or inf")
        yield p, values
