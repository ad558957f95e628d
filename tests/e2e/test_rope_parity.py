"""RoPE as config.json says it, in every family whose tunix attention hardcodes it (training/rope.py).

tunix 0.1.7's Llama3 and Qwen3 always rotate with theta 1e6, its Gemma 1 / 2 with 1e4, and none knows
Llama 3.1's "llama3" frequency scaling. Each case loads a tiny checkpoint (tests/support/hf_fixtures.py) with
another theta or with that scaling and compares its logits with the independent numpy forward pass
(tests/support/numpy_reference.py, which computes the scaling from transformers' formula itself). Each case also
shows that it can tell: the numpy pass with the RoPE tunix would have used differs by far more than the
tolerance. 64 positions, so the slow frequencies that the llama3 scaling changes turn measurably.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support import numpy_reference
from tests.support.hf_fixtures import write_tiny_checkpoint
from training import hf_models

TOLERANCE = 1e-5  # measured: up to 4e-6 over 64 positions
TOKENS = np.random.default_rng(2).integers(0, 300, size=(2, 64))
_LLAMA_3_2 = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 8192}  # meta-llama/Llama-3.2-1B's rope_scaling
# An original context of 64 puts most of the tiny head's frequencies in the scaled or smoothed bands.
_SHORT_CONTEXT = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 64}
# What tunix's attention would rotate with, whatever config.json says.
_TUNIX_THETA = {"llama3": 1_000_000.0, "qwen3": 1_000_000.0, "gemma": 10_000.0, "gemma2": 10_000.0}

CASES = {
    "llama3-theta-1e5": ("llama3", {"rope_theta": 100_000.0}),  # SmolLM2
    "llama3-theta-5e5": ("llama3", {"rope_theta": 500_000.0}),  # Llama 3.0
    "llama3-theta-5e5-v5": ("llama3", {"rope_theta": 500_000.0, "config_style": "v5"}),
    "llama3-scaling-3.2": ("llama3", {"rope_theta": 500_000.0, "rope_scaling": _LLAMA_3_2}),
    "llama3-scaling-short-context": ("llama3", {"rope_theta": 10_000.0, "rope_scaling": _SHORT_CONTEXT}),
    "llama3-scaling-v5": ("llama3", {"rope_theta": 10_000.0, "rope_scaling": _SHORT_CONTEXT, "config_style": "v5"}),
    "llama3-scaling-old-type-key": ("llama3", {"rope_theta": 10_000.0, "rope_scaling": {
        **{k: v for k, v in _SHORT_CONTEXT.items() if k != "rope_type"}, "type": "llama3"}}),
    "qwen3-theta-5e6": ("qwen3", {"rope_theta": 5_000_000.0}),  # Qwen3-4B-Instruct-2507
    "qwen3-theta-5e6-v5": ("qwen3", {"rope_theta": 5_000_000.0, "config_style": "v5"}),
    "gemma-theta-5e5": ("gemma", {"rope_theta": 500_000.0}),
    "gemma2-theta-5e5": ("gemma2", {"rope_theta": 500_000.0}),
}


def _logits(folder: Path) -> np.ndarray:
    import jax

    config = json.loads((folder / "config.json").read_text())
    model = hf_models.load_hf_model(folder, config)
    with jax.default_matmul_precision("highest"):  # a no-op on CPU; keeps accelerators off TF32/bf16 passes
        return hf_models.forward_logits(model, hf_models.family_of(config), TOKENS)


def _reference(folder: Path, rope: dict | None = None) -> np.ndarray:
    """The numpy logits of the folder's checkpoint, or of its weights rotated by `rope` instead."""
    config = json.loads((folder / "config.json").read_text())
    if rope is not None:
        config = {k: v for k, v in config.items() if k not in ("rope_theta", "rope_scaling", "rope_parameters")}
        config["rope_parameters"] = rope
    return numpy_reference.forward(numpy_reference.load_tensors(folder), config, TOKENS)


def _plain(theta: float) -> dict:
    return {"rope_type": "default", "rope_theta": theta}


@pytest.mark.parametrize("case", CASES)
def test_configured_rope_matches_numpy_reference(case, tmp_path):
    family, overrides = CASES[case]
    folder = write_tiny_checkpoint(tmp_path, family, seed=11, **overrides)
    got, want = _logits(folder), _reference(folder)
    assert np.abs(got - want).max() <= TOLERANCE
    # The case can tell: tunix's own theta, or no scaling, moves the logits far past the tolerance.
    assert np.abs(_reference(folder, _plain(_TUNIX_THETA[family])) - want).max() > 100 * TOLERANCE
    if "rope_scaling" in overrides:
        assert np.abs(_reference(folder, _plain(overrides["rope_theta"])) - want).max() > 100 * TOLERANCE


def test_two_models_in_one_process_each_keep_their_own_rope(tmp_path):
    """Configuring one model's RoPE changes no other: not one built before, nor a plain tunix model after."""
    from tunix.models.llama3 import model as llama3_model
    from tunix.models.llama3 import params as llama3_params

    tunix_rope, tunix_block = llama3_model.apply_rope, llama3_model.Attention.block
    folders = {theta: write_tiny_checkpoint(tmp_path / f"{theta:g}", "llama3", seed=3, rope_theta=theta)
               for theta in (100_000.0, 500_000.0)}
    configs = {theta: json.loads((folder / "config.json").read_text()) for theta, folder in folders.items()}
    models = {theta: hf_models.load_hf_model(folders[theta], configs[theta]) for theta in folders}
    for theta, model in models.items():
        got = hf_models.forward_logits(model, "llama3", TOKENS)
        assert np.abs(got - _reference(folders[theta])).max() <= TOLERANCE
    assert llama3_model.apply_rope is tunix_rope and llama3_model.Attention.block is tunix_block

    # tunix's own loader still builds its unconfigured model, which rotates with 1e6 whatever the config says.
    plain = llama3_params.create_model_from_safe_tensors(
        str(folders[500_000.0]), hf_models.tunix_config("llama3", configs[500_000.0]), mesh=None)
    assert type(plain.layers[0].attn) is llama3_model.Attention
    got = hf_models.forward_logits(plain, "llama3", TOKENS)
    assert np.abs(got - _reference(folders[500_000.0], _plain(1_000_000.0))).max() <= TOLERANCE


def test_decoding_with_a_kv_cache_rotates_each_new_token_at_its_position(tmp_path):
    """Generation's path: a prefill, then one token at a time into tunix's KV cache (its layout, as its Sampler
    builds it), each step's logits equal to the full pass's at that position."""
    import jax.numpy as jnp

    folder = write_tiny_checkpoint(tmp_path, "llama3", seed=5, rope_theta=10_000.0, rope_scaling=_SHORT_CONTEXT)
    model = hf_models.load_hf_model(folder, json.loads((folder / "config.json").read_text()))
    want = _reference(folder)
    batch, length, prefill, c = TOKENS.shape[0], TOKENS.shape[1], 48, model.config
    empty = jnp.zeros((batch, length, c.num_kv_heads, c.head_dim), jnp.float32)
    cache = {f"layer_{i}": {"k": empty, "v": empty, "end_index": jnp.zeros((batch,), jnp.int32)}
             for i in range(c.num_layers)}
    positions = jnp.broadcast_to(jnp.arange(prefill), (batch, prefill))
    mask = jnp.broadcast_to(jnp.tril(jnp.ones((prefill, length), jnp.bool_)), (batch, prefill, length))
    logits, cache = model(jnp.asarray(TOKENS[:, :prefill]), positions, cache, mask)
    assert np.abs(np.asarray(logits) - want[:, :prefill]).max() <= TOLERANCE
    for t in range(prefill, length):
        mask = jnp.broadcast_to(jnp.arange(length) <= t, (batch, 1, length))
        logits, cache = model(jnp.asarray(TOKENS[:, t:t + 1]), jnp.full((batch, 1), t), cache, mask)
        assert np.abs(np.asarray(logits)[:, 0] - want[:, t]).max() <= TOLERANCE
