"""Hugging Face checkpoints loaded through tunix compute what the HF model computes.

Each family's tiny checkpoint (tests/support/hf_fixtures.py, the hub's key layout and config.json) is loaded by
training.hf_models into a tunix model; its logits must match an independent float64 numpy forward pass
of the same tensors (tests/support/numpy_reference.py) to 1e-5. A transposed, misplaced or skipped tensor, a
wrong RoPE base, window or norm moves these logits by O(1) (they are of size ~4), so the tolerance only
leaves room for float32 rounding (measured: 1.6e-6 to 7.2e-6).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import numpy_reference
from tests.support.hf_fixtures import FAMILIES, write_tiny_checkpoint
from training import hf_models

TOLERANCE = 1e-5
REPO = Path(__file__).resolve().parents[2]
# Two rows, 12 positions: longer than the Gemma 2 / 3 fixtures' sliding window (4), so local layers mask.
TOKENS = np.random.default_rng(1).integers(0, 300, size=(2, 12))


def _tunix_and_reference(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    import jax

    config = json.loads((folder / "config.json").read_text())
    family = hf_models.family_of(hf_models.text_config(config))
    model = hf_models.load_hf_model(folder, config)
    with jax.default_matmul_precision("highest"):  # a no-op on CPU; keeps accelerators off TF32/bf16 passes
        got = hf_models.forward_logits(model, family, TOKENS)
    want = numpy_reference.forward(numpy_reference.load_tensors(folder), config, TOKENS)
    assert got.shape == want.shape == (*TOKENS.shape, hf_models.text_config(config)["vocab_size"])
    assert got.dtype == np.float32
    return got, want


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_match_numpy_reference(family, tmp_path):
    got, want = _tunix_and_reference(write_tiny_checkpoint(tmp_path, family))
    assert np.abs(got - want).max() <= TOLERANCE


# The layouts real checkpoints come in: kv-head sharing (MQA / GQA / tunix's fused qkv when equal), tied and
# untied heads, transformers 5.x rope_parameters, bfloat16 files, Gemma 3's multimodal wrapper, linear RoPE
# scaling (Gemma 3 4B+) and the 27B query scaling, Qwen2's own rope_theta; Gemma 1 as 7B (multi-head) and
# 1.1 (hidden_activation) ship it; Gemma 2 with soft-caps that bite, none at all, and any layer pattern.
VARIANTS = {
    "gemma3-gqa": ("gemma3", {"num_key_value_heads": 2}),
    "gemma3-fused-qkv": ("gemma3", {"num_key_value_heads": 4}),
    "gemma3-v5-config": ("gemma3", {"config_style": "v5"}),
    "gemma3-multimodal": ("gemma3", {"config_style": "multimodal"}),
    "gemma3-linear-rope": ("gemma3", {"rope_scaling": {"rope_type": "linear", "factor": 8.0}}),
    "gemma3-linear-rope-v5": ("gemma3", {"rope_scaling": {"rope_type": "linear", "factor": 8.0}, "config_style": "v5"}),
    "gemma3-query-scale-27b": ("gemma3", {"query_pre_attn_scalar": 8}),  # hidden_size / heads, not head_dim
    "gemma3-7-layers": ("gemma3", {"num_hidden_layers": 7}),  # the pattern restarts
    "qwen3-untied": ("qwen3", {"tie_word_embeddings": False}),
    "qwen3-v5-config": ("qwen3", {"config_style": "v5"}),
    "qwen3-bfloat16": ("qwen3", {"weights_dtype": "bfloat16"}),
    "llama3-tied": ("llama3", {"tie_word_embeddings": True}),
    "llama3-v5-config": ("llama3", {"config_style": "v5"}),
    "llama3-no-head-dim": ("llama3", {"head_dim_in_config": False}),
    "qwen2-tied": ("qwen2", {"tie_word_embeddings": True}),
    "qwen2-v5-config": ("qwen2", {"config_style": "v5"}),
    "qwen2-rope-theta-1e4": ("qwen2", {"rope_theta": 10_000.0}),
    "gemma-7b-fused-qkv": ("gemma", {"num_key_value_heads": 4}),
    "gemma-gqa": ("gemma", {"num_key_value_heads": 2}),
    "gemma-1.1-activation": ("gemma", {"hidden_activation": "gelu_pytorch_tanh"}),
    "gemma-v5-config": ("gemma", {"config_style": "v5", "hidden_act": "gelu_pytorch_tanh"}),  # GemmaConfig's default
    "gemma-bfloat16": ("gemma", {"weights_dtype": "bfloat16"}),
    "gemma2-strong-softcaps": ("gemma2", {"final_logit_softcapping": 2.0, "attn_logit_softcapping": 0.5}),
    "gemma2-no-softcaps": ("gemma2", {"final_logit_softcapping": None, "attn_logit_softcapping": None}),
    "gemma2-mqa": ("gemma2", {"num_key_value_heads": 1}),
    "gemma2-fused-qkv": ("gemma2", {"num_key_value_heads": 4}),
    "gemma2-3-layers": ("gemma2", {"num_hidden_layers": 3}),  # the pattern restarts
    "gemma2-own-layer-types": ("gemma2", {"layer_types": ["full_attention", "sliding_attention"]}),
    "gemma2-v5-config": ("gemma2", {"config_style": "v5"}),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_logits_match_numpy_reference(variant, tmp_path):
    family, overrides = VARIANTS[variant]
    got, want = _tunix_and_reference(write_tiny_checkpoint(tmp_path, family, seed=7, **overrides))
    assert np.abs(got - want).max() <= TOLERANCE


_LLAMA3_ROPE = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}
# (family, config.json overrides, the field the refusal must name). Each was measured to move the fixture's
# logits by 0.2 to 6 when loaded anyway; the Gemma 1 / 2 norm epsilon and exact-GELU cases by 3e-5 to 1.3e-3;
# untied heads and a null Gemma 2 window fail the load; biases, bidirectional and chunked attention tunix would
# drop or replace, which these fixtures cannot show; RoPE types and llama3 fields no code here computes.
# Every theta and Llama 3's scaling are honoured: tests/e2e/test_rope_parity.py.
REFUSED = {
    "qwen3-yarn": ("qwen3", {"rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                              "original_max_position_embeddings": 32768}}, "rope_scaling"),
    "qwen3-llama3-rope": ("qwen3", {"rope_scaling": _LLAMA3_ROPE}, "rope_scaling"),  # Llama's only
    "qwen3-sliding": ("qwen3", {"use_sliding_window": True}, "use_sliding_window"),
    "qwen3-bias": ("qwen3", {"attention_bias": True}, "attention_bias"),
    "llama3-yarn": ("llama3", {"rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                                "original_max_position_embeddings": 8192}}, "rope_scaling"),
    "llama3-rope-no-low-freq": ("llama3", {"rope_scaling": {k: v for k, v in _LLAMA3_ROPE.items()
                                                            if k != "low_freq_factor"}}, "rope_scaling.low_freq_factor"),
    "llama3-rope-inverted-v5": ("llama3", {"rope_scaling": {**_LLAMA3_ROPE, "high_freq_factor": 1.0},
                                           "config_style": "v5"}, "rope_parameters.high_freq_factor"),
    "llama3-rope-theta-zero": ("llama3", {"rope_theta": 0}, "rope_theta"),
    "llama3-mlp-bias": ("llama3", {"mlp_bias": True}, "mlp_bias"),
    "llama3-activation": ("llama3", {"hidden_act": "gelu"}, "hidden_act"),
    "qwen2-sliding": ("qwen2", {"use_sliding_window": True, "max_window_layers": 1}, "use_sliding_window"),
    "qwen2-dynamic-rope": ("qwen2", {"rope_scaling": {"type": "dynamic", "factor": 2.0}}, "rope_scaling"),
    "gemma3-untied": ("gemma3", {"tie_word_embeddings": False}, "tie_word_embeddings"),
    "gemma3-norm-eps": ("gemma3", {"rms_norm_eps": 1e-5}, "rms_norm_eps"),
    "gemma3-final-softcap": ("gemma3", {"final_logit_softcapping": 30.0}, "final_logit_softcapping"),
    "gemma3-attn-softcap": ("gemma3", {"attn_logit_softcapping": 50.0}, "attn_logit_softcapping"),
    "gemma3-query-scale": ("gemma3", {"query_pre_attn_scalar": 64}, "query_pre_attn_scalar"),
    "gemma3-pattern": ("gemma3", {"sliding_window_pattern": 2}, "sliding_window_pattern"),
    "gemma3-layer-types": ("gemma3", {"layer_types": ["full_attention"] * 6}, "layer_types"),
    "gemma3-no-window": ("gemma3", {"sliding_window": None}, "sliding_window"),
    "gemma3-bidirectional": ("gemma3", {"use_bidirectional_attention": True}, "use_bidirectional_attention"),
    "gemma3-quantized": ("gemma3", {"quantization_config": {"quant_method": "bitsandbytes"}}, "quantization_config"),
    "gemma-linear-rope": ("gemma", {"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope_scaling"),
    "gemma-norm-eps": ("gemma", {"rms_norm_eps": 1e-5}, "rms_norm_eps"),
    "gemma-untied": ("gemma", {"tie_word_embeddings": False}, "tie_word_embeddings"),
    "gemma-bias": ("gemma", {"attention_bias": True}, "attention_bias"),
    "gemma-exact-gelu": ("gemma", {"hidden_activation": "gelu"}, "hidden_activation"),
    "gemma-silu": ("gemma", {"hidden_act": "silu"}, "hidden_act"),
    "gemma-bidirectional": ("gemma", {"use_bidirectional_attention": True}, "use_bidirectional_attention"),
    "gemma2-query-scale-27b": ("gemma2", {"query_pre_attn_scalar": 8}, "query_pre_attn_scalar"),  # hidden / heads
    "gemma2-norm-eps": ("gemma2", {"rms_norm_eps": 1e-5}, "rms_norm_eps"),
    "gemma2-untied": ("gemma2", {"tie_word_embeddings": False}, "tie_word_embeddings"),
    "gemma2-exact-gelu": ("gemma2", {"hidden_activation": "gelu"}, "hidden_activation"),
    "gemma2-no-window": ("gemma2", {"sliding_window": None}, "sliding_window"),
    "gemma2-chunked-layer": ("gemma2", {"layer_types": ["sliding_attention", "chunked_attention"]}, "layer_types"),
    "gemma2-bidirectional": ("gemma2", {"use_bidirectional_attention": True}, "use_bidirectional_attention"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_refuses_config_values_tunix_cannot_honour(case, tmp_path):
    family, overrides, field = REFUSED[case]
    config = json.loads((write_tiny_checkpoint(tmp_path, family, **overrides) / "config.json").read_text())
    assert field in [f for f, _, _ in hf_models.unsupported(family, config)]
    with pytest.raises(hf_models.UnsupportedConfig) as refused:
        hf_models.load_hf_model(tmp_path, config)
    assert field in [f for f, _, _ in refused.value.problems] and field in str(refused.value)


@pytest.mark.parametrize("family", FAMILIES)
def test_fixture_configs_are_fully_supported(family, tmp_path):
    config = json.loads((write_tiny_checkpoint(tmp_path, family) / "config.json").read_text())
    assert hf_models.unsupported(family, config) == []


def test_ignored_tensors_fail_the_load(tmp_path):
    """tunix skips tensors it cannot place without an error; load_hf_model counts what landed."""
    folder = write_tiny_checkpoint(tmp_path / "layers", "qwen2")
    config = json.loads((folder / "config.json").read_text())
    with pytest.raises(ValueError, match="ignored"):  # a config with fewer layers than the file drops layers
        hf_models.load_hf_model(folder, {**config, "num_hidden_layers": 1})
    with pytest.raises(ValueError, match="ignored"):  # a tied config never reads the file's lm_head.weight
        hf_models.load_hf_model(folder, {**config, "tie_word_embeddings": True})


def test_unknown_model_type_is_refused():
    with pytest.raises(ValueError, match="mistral"):
        hf_models.family_of({"model_type": "mistral"})


# Run in a fresh interpreter: huggingface_hub reads HF_HUB_OFFLINE when imported. The endpoint points at a
# closed port as well, so any request that slipped through would fail instead of reaching the network.
_TOKENIZER_SCRIPT = """
import json, sys
from transformers import AutoTokenizer
texts = ["Hello world! Tuning JAX.", "naïve café, 日本語 and emoji 🙂", "  leading spaces\\nand lines\\t"]
out = {}
for family, folder in json.loads(sys.argv[1]).items():
    tok = AutoTokenizer.from_pretrained(folder)
    ids = [tok(text)["input_ids"] for text in texts]
    out[family] = {
        "decoded": [tok.decode(i, skip_special_tokens=True) for i in ids], "first_ids": [i[0] for i in ids],
        "bos": [tok.bos_token, tok.bos_token_id], "eos": [tok.eos_token, tok.eos_token_id],
        "pad": [tok.pad_token, tok.pad_token_id], "size": len(tok),
        "chat": tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                        add_generation_prompt=True),
    }
print(json.dumps(out))
"""
_CHAT_MARKERS = {"gemma3": "<start_of_turn>model\n", "qwen3": "<|im_start|>assistant\n",
                 "qwen2": "<|im_start|>assistant\n", "llama3": "<|start_header_id|>assistant<|end_header_id|>",
                 "gemma": "<start_of_turn>model\n", "gemma2": "<start_of_turn>model\n"}
_SPECIAL = {"gemma3": ("<bos>", "<eos>", "<pad>"), "qwen3": (None, "<|im_end|>", "<|endoftext|>"),
            "qwen2": (None, "<|im_end|>", "<|endoftext|>"), "llama3": ("<|begin_of_text|>", "<|eot_id|>", None),
            "gemma": ("<bos>", "<eos>", "<pad>"), "gemma2": ("<bos>", "<eos>", "<pad>")}


@pytest.fixture(scope="module")
def offline_tokenizers(tmp_path_factory):
    folders = {f: str(write_tiny_checkpoint(tmp_path_factory.mktemp(f), f)) for f in FAMILIES}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9",
           "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _TOKENIZER_SCRIPT, json.dumps(folders)], env=env,
                          check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return folders, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_loads_offline_and_round_trips(family, offline_tokenizers):
    folders, results = offline_tokenizers
    got = results[family]
    assert got["decoded"] == ["Hello world! Tuning JAX.", "naïve café, 日本語 and emoji 🙂",
                              "  leading spaces\nand lines\t"]
    bos, eos, pad = _SPECIAL[family]
    assert [got["bos"][0], got["eos"][0], got["pad"][0]] == [bos, eos, pad]
    config = json.loads((Path(folders[family]) / "config.json").read_text())
    if bos:  # Gemma and Llama prepend BOS, and config.json names the same id
        assert got["first_ids"] == [got["bos"][1]] * 3 == [config["bos_token_id"]] * 3
    else:
        assert got["bos"][1] not in got["first_ids"]
    assert got["size"] <= config["vocab_size"]
    assert got["chat"].startswith(bos or "<|im_start|>user") and _CHAT_MARKERS[family] in got["chat"]
