"""RoPE fields of config.json as training/hf_config.py reads and judges them (no JAX): real Llama 3.1 / 3.2,
SmolLM2 and Qwen3-2507 configs are accepted; a rope type or llama3 field no code here computes is refused
naming the field. That the accepted ones compute the right logits is tests/e2e/test_rope_parity.py."""

from __future__ import annotations

import pytest

from training.hf_config import family_of, rope_settings, unsupported

_LLAMA3_SCALING = {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"}
# meta-llama/Llama-3.2-1B-Instruct's config.json (transformers 4.45)
LLAMA_3_2 = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009], "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
    "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": False,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": _LLAMA3_SCALING, "rope_theta": 500000.0,
    "tie_word_embeddings": True, "torch_dtype": "bfloat16", "transformers_version": "4.45.0.dev0", "use_cache": True,
    "vocab_size": 128256,
}
# meta-llama/Llama-3.1-8B-Instruct: no head_dim, untied, factor 8
LLAMA_3_1 = {**{k: v for k, v in LLAMA_3_2.items() if k != "head_dim"}, "hidden_size": 4096,
             "intermediate_size": 14336, "num_hidden_layers": 32, "tie_word_embeddings": False,
             "rope_scaling": {**_LLAMA3_SCALING, "factor": 8.0}}
# The same Llama 3.2 as transformers 5.x writes it
LLAMA_3_2_V5 = {**{k: v for k, v in LLAMA_3_2.items() if k not in ("rope_scaling", "rope_theta")},
                "rope_parameters": {**_LLAMA3_SCALING, "rope_theta": 500000.0}, "transformers_version": "5.12.1"}
# HuggingFaceTB/SmolLM2-135M-Instruct: rope_theta 1e5, no scaling
SMOLLM2 = {"architectures": ["LlamaForCausalLM"], "hidden_act": "silu", "hidden_size": 576, "intermediate_size": 1536,
           "max_position_embeddings": 8192, "model_type": "llama", "num_attention_heads": 9, "num_hidden_layers": 30,
           "num_key_value_heads": 3, "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 100000,
           "tie_word_embeddings": True, "vocab_size": 49152}
# Qwen/Qwen3-4B-Instruct-2507: rope_theta 5e6
QWEN3_2507 = {
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 2560, "initializer_range": 0.02,
    "intermediate_size": 9728, "max_position_embeddings": 262144, "max_window_layers": 36, "model_type": "qwen3",
    "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
    "rope_scaling": None, "rope_theta": 5000000, "sliding_window": None, "tie_word_embeddings": True,
    "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": True, "use_sliding_window": False,
    "vocab_size": 151936,
}


@pytest.mark.parametrize("config", [LLAMA_3_2, LLAMA_3_1, LLAMA_3_2_V5, SMOLLM2, QWEN3_2507],
                         ids=["llama-3.2", "llama-3.1", "llama-3.2-v5", "smollm2", "qwen3-2507"])
def test_real_configs_are_accepted(config):
    assert unsupported(family_of(config), config) == []


@pytest.mark.parametrize("config", [LLAMA_3_2, LLAMA_3_2_V5], ids=["v4", "v5"])
def test_llama3_scaling_is_read_from_either_format(config):
    rope, _, _ = rope_settings(config, "llama3")
    assert rope == {**_LLAMA3_SCALING, "rope_theta": 500000.0}


def _fields(config: dict) -> dict[str, str]:
    return {field: why for field, _, why in unsupported(family_of(config), config)}


@pytest.mark.parametrize(("config", "field"), [
    ({**LLAMA_3_2, "rope_scaling": {**_LLAMA3_SCALING, "rope_type": "longrope"}}, "rope_scaling"),
    ({**LLAMA_3_2, "rope_scaling": {"type": "dynamic", "factor": 2.0}}, "rope_scaling"),  # 4.x's older key
    ({**LLAMA_3_2_V5, "rope_parameters": {"rope_type": "yarn", "rope_theta": 5e5, "factor": 4.0}},
     "rope_parameters.rope_type"),
])
def test_an_unknown_rope_type_is_refused_naming_the_field(config, field):
    assert "supports only rope_type default / llama3" in _fields(config)[field]


def test_llama3_scaling_is_llama_only():
    assert "supports only rope_type default" in _fields({**QWEN3_2507, "rope_scaling": _LLAMA3_SCALING})["rope_scaling"]


@pytest.mark.parametrize(("scaling", "field"), [
    ({k: v for k, v in _LLAMA3_SCALING.items() if k != "original_max_position_embeddings"},
     "rope_scaling.original_max_position_embeddings"),
    ({**_LLAMA3_SCALING, "factor": "32"}, "rope_scaling.factor"),
    ({**_LLAMA3_SCALING, "factor": 0.5}, "rope_scaling.factor"),
    ({**_LLAMA3_SCALING, "low_freq_factor": 4.0}, "rope_scaling.high_freq_factor"),  # the ramp would divide by 0
])
def test_an_unusable_llama3_field_is_refused_by_name(scaling, field):
    assert field in _fields({**LLAMA_3_2, "rope_scaling": scaling})


@pytest.mark.parametrize("theta", [0, -1.0, "500000", float("inf")])
def test_rope_theta_must_be_a_positive_number(theta):
    assert "rope_theta" in _fields({**SMOLLM2, "rope_theta": theta})
