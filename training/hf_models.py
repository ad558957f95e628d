"""Hugging Face decoder checkpoints (config.json + *.safetensors) as tunix nnx models, offline, float32.

tunix's AutoModel always goes to the hub, and its offline loaders never read config.json: the tunix
ModelConfig is built here from what training/hf_config.py reads and accepts. JAX and tunix are
imported inside the functions that need them: importing this module stays cheap.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from training.families import family as _family
from training.hf_checkpoint import safetensors_header
from training.hf_config import (  # noqa: F401  UnsupportedConfig, unsupported: tests reach them through this module
    _TEXT_ONLY_PREFIXES, UnsupportedConfig, family_of, rope_settings, text_config, unsupported,
)


def tunix_config(family: str, config: dict):
    """The tunix ModelConfig (float32 parameters) for config.json; UnsupportedConfig when tunix cannot honour it."""
    return _family(family).tunix_config(config)


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
    from flax import nnx

    from training import rope

    family = family_of(config)
    spec = _family(family)
    model_config = spec.tunix_config(config)
    headers = _headers(folder)
    # tunix's fast loader reads a whole file as the dtype of its first tensor: use the slow, per-tensor
    # one when a file mixes dtypes.
    mixed = any(len({t["dtype"] for t in h.values()}) > 1 for h in headers.values())
    loader = spec.load_module()
    model = spec.create_model(spec, folder, model_config, loader, "original" if mixed else "optimized")
    if spec.rope_override:  # tunix's attention hardcodes theta (and knows no llama3 scaling) there
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


def _unplaced(family: str, loader, model_config, names) -> list[str]:
    """Tensor names tunix's key mapping skips or marks unused (a message for the failure path only)."""
    from tunix.utils.torch_utils import torch_key_to_jax_key

    key_map = _family(family).key_mapping(loader, model_config)
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

    _family(family)  # ValueError naming the known families for any other name
    tokens = jnp.asarray(token_ids, dtype=jnp.int32)
    batch, length = tokens.shape
    positions = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (batch, length))
    causal = jnp.broadcast_to(jnp.tril(jnp.ones((length, length), dtype=jnp.bool_)), (batch, length, length))
    # Every tunix family here takes (tokens, positions, cache, attention_mask [B, T, S]) positionally.
    logits, _ = model(tokens, positions, None, causal)
    return np.asarray(logits, dtype=np.float32)
