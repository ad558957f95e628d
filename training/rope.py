"""RoPE as config.json says, for the tunix models whose attention hardcodes it.

tunix 0.1.7's Llama3 and Qwen3 attention call their module's `apply_rope` without a theta (so 1e6,
whatever config.rope_theta says) and know no "llama3" frequency scaling; its Gemma 1 / 2 always use
1e4. The fix is per model, never process-wide: `configure_rope` turns each attention module of one
built model into a subclass whose `block` is tunix's own block code, run with `apply_rope` resolving to
a rotation by this model's inverse frequencies. Every other model, built before or after, keeps
tunix's behaviour. The subclasses are module-level (picklable, and nnx split/merge rebuild them); the
pinned tunix version (pyproject.toml) is what the block code is read from.
"""

from __future__ import annotations

import functools
import math
import types

import jax.numpy as jnp
import numpy as np
from tunix.models.gemma import model as gemma_model
from tunix.models.llama3 import model as llama3_model
from tunix.models.qwen3 import model as qwen3_model

from training import families as registry


def inverse_frequencies(rope: dict, head_dim: int) -> tuple[float, ...]:
    """head_dim / 2 inverse frequencies for rope (rope_type, rope_theta and the type's fields), as
    transformers computes them: _compute_default_rope_parameters and _compute_llama3_parameters."""
    base = float(rope["rope_theta"])
    inv_freq = 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    if rope["rope_type"] == "llama3":  # Llama 3.1+: long wavelengths slowed by `factor`, a smooth ramp between
        factor, low, high = (float(rope[k]) for k in ("factor", "low_freq_factor", "high_freq_factor"))
        context = float(rope["original_max_position_embeddings"])
        wavelength = 2 * math.pi / inv_freq
        slowed = np.where(wavelength > context / low, inv_freq / factor, inv_freq)
        ramp = (context / wavelength - low) / (high - low)
        between = (wavelength >= context / high) & (wavelength <= context / low)
        inv_freq = np.where(between, (1 - ramp) * slowed / factor + ramp * slowed, slowed)
    elif rope["rope_type"] != "default":
        raise ValueError(f"rope_type must be default or llama3, got {rope['rope_type']!r}")
    return tuple(float(f) for f in inv_freq)


def _rotate(inputs, positions, head_dim: int, *, inv_freq: tuple[float, ...]):
    """tunix's apply_rope (rotate-half pairs, [B, T, heads, head_dim]) with these frequencies; the angles in
    float32, as transformers computes them."""
    del head_dim  # len(inv_freq) * 2; tunix passes it
    angles = positions[..., None].astype(jnp.float32) * jnp.asarray(inv_freq, dtype=jnp.float32)
    sin, cos = jnp.sin(angles)[..., None, :], jnp.cos(angles)[..., None, :]  # one row for every head
    first, second = jnp.split(inputs, 2, axis=-1)
    return jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1).astype(inputs.dtype)


@functools.cache
def _rebound(tunix_block: types.FunctionType, inv_freq: tuple[float, ...]) -> types.FunctionType:
    """tunix_block's code over its own module's globals, with `apply_rope` rotating by these frequencies."""
    if "apply_rope" not in tunix_block.__code__.co_names:  # another tunix than the pinned one: fail, not drift
        raise RuntimeError(f"{tunix_block.__qualname__} no longer calls apply_rope; training/rope.py needs updating")
    rebound = dict(tunix_block.__globals__, apply_rope=functools.partial(_rotate, inv_freq=inv_freq))
    block = types.FunctionType(tunix_block.__code__, rebound, tunix_block.__name__, tunix_block.__defaults__,
                               tunix_block.__closure__)
    block.__kwdefaults__ = tunix_block.__kwdefaults__
    return block


def _configured_block(tunix_attention: type):
    """A block method: tunix_attention's own, rotating by the instance's rope_inv_freq (static, not a Param)."""
    def block(self, *args, **kwargs):
        return _rebound(tunix_attention.block, self.rope_inv_freq)(self, *args, **kwargs)
    return block


# Subclasses that add no slots or bases, so an existing tunix Attention's __class__ can become one.
class Llama3Attention(llama3_model.Attention):
    block = _configured_block(llama3_model.Attention)


class Qwen3Attention(qwen3_model.Attention):
    block = _configured_block(qwen3_model.Attention)


class GemmaAttention(gemma_model.Attention):
    block = _configured_block(gemma_model.Attention)


_CONFIGURED = {llama3_model.Attention: Llama3Attention, qwen3_model.Attention: Qwen3Attention,
               gemma_model.Attention: GemmaAttention}
# The families whose tunix attention these classes replace (each family says so: Family.rope_override).
FAMILIES = tuple(f.name for f in registry.FAMILIES if f.rope_override)


def configure_rope(model, rope: dict) -> None:
    """Every attention module of this tunix model rotates by `rope` (a rope_settings dict) from now on."""
    for layer in model.layers:
        attention = layer.attn
        configured = _CONFIGURED.get(type(attention), type(attention))  # configured already: new frequencies only
        if configured not in _CONFIGURED.values():
            raise TypeError(f"{type(attention).__qualname__} has no configured-RoPE attention here")
        attention.__class__ = configured  # the same module, parameters and all; only its block changes
        attention.rope_inv_freq = inverse_frequencies(rope, attention.head_dim)
