"""Tiny Hugging Face-format checkpoints, written the way the hub lays them out (no torch, no network).

`write_tiny_checkpoint(folder, family)` writes config.json, model.safetensors (random float32 weights,
seeded, in the exact HF key layout), tokenizer.json (a byte-level BPE trained here on a few sentences),
tokenizer_config.json with the family's special tokens and chat template, and generation_config.json.
Each folder is well under 200 KB.

Keyword overrides change config.json fields (num_key_value_heads=1, tie_word_embeddings=False,
rope_theta=5e6, ...). Three are not config fields:
  config_style: "v4" (default: rope_theta / rope_scaling / rope_local_base_freq, as hub checkpoints
      written by transformers 4.x hold them), "v5" (rope_parameters, as transformers 5.x writes), or,
      for gemma3 only, "multimodal" (a Gemma3ForConditionalGeneration config with a text_config, and
      weights under language_model.model.*, as google/gemma-3-4b-it ships them).
  weights_dtype: "float32" (default) or "bfloat16" (the dtype hub checkpoints usually hold).
  head_dim_in_config: False leaves head_dim out (older Llama configs derive it from hidden_size).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FAMILIES = ("gemma3", "qwen3", "llama3", "qwen2", "gemma", "gemma2")
_GEMMAS = ("gemma", "gemma2", "gemma3")

_MODEL_TYPE = {"gemma3": "gemma3_text", "qwen3": "qwen3", "llama3": "llama", "qwen2": "qwen2", "gemma": "gemma",
               "gemma2": "gemma2"}
_ARCHITECTURE = {"gemma3": "Gemma3ForCausalLM", "qwen3": "Qwen3ForCausalLM", "llama3": "LlamaForCausalLM",
                 "qwen2": "Qwen2ForCausalLM", "gemma": "GemmaForCausalLM", "gemma2": "Gemma2ForCausalLM"}

# Shapes echo the real small models of each family, scaled down: Gemma 3 1B and Gemma 2B are MQA (1 kv head)
# with a head_dim of their own (Gemma 7B's 256 != hidden/heads); Gemma 2 2B is GQA; Qwen3 sets head_dim
# explicitly; Llama/Qwen2 use GQA with head_dim = hidden/heads.
_BASE = dict(vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=512)
_FAMILY_CONFIG = {
    # 6 layers so the fixed 5-local:1-global pattern reaches a global layer; a window of 4 tokens so
    # sequences longer than 4 exercise the sliding mask.
    "gemma3": dict(num_hidden_layers=6, num_key_value_heads=1, head_dim=16, hidden_activation="gelu_pytorch_tanh",
                   rms_norm_eps=1e-6, query_pre_attn_scalar=16, sliding_window=4, sliding_window_pattern=6,
                   rope_theta=1_000_000.0, rope_local_base_freq=10_000.0, rope_scaling=None,
                   final_logit_softcapping=None, attn_logit_softcapping=None, attention_bias=False,
                   attention_dropout=0.0, tie_word_embeddings=True, initializer_range=0.02),
    # rope_theta 1e6: tunix's own for Qwen3 and Llama3; tests/e2e/test_rope_parity.py overrides it.
    "qwen3": dict(head_dim=16, hidden_act="silu", rms_norm_eps=1e-6, rope_theta=1_000_000.0, rope_scaling=None,
                  attention_bias=False, attention_dropout=0.0, use_sliding_window=False, sliding_window=None,
                  max_window_layers=2, tie_word_embeddings=True, initializer_range=0.02),
    "llama3": dict(head_dim=8, hidden_act="silu", rms_norm_eps=1e-5, rope_theta=1_000_000.0, rope_scaling=None,
                   attention_bias=False, attention_dropout=0.0, mlp_bias=False, pretraining_tp=1,
                   tie_word_embeddings=False, initializer_range=0.02),
    "qwen2": dict(hidden_act="silu", rms_norm_eps=1e-6, rope_theta=1_000_000.0, attention_dropout=0.0,
                  use_sliding_window=False, sliding_window=512, max_window_layers=2, tie_word_embeddings=False,
                  initializer_range=0.02),
    # google/gemma-2b(-it)'s fields: hidden_act "gelu" (as transformers 4.38.0.dev0 wrote it), no
    # hidden_activation; transformers 4.39+ run it as the tanh GELU (see training/hf_config.activation).
    "gemma": dict(num_key_value_heads=1, head_dim=16, hidden_act="gelu", rms_norm_eps=1e-6, rope_theta=10_000.0,
                  rope_scaling=None, attention_bias=False, attention_dropout=0.0, tie_word_embeddings=True,
                  initializer_range=0.02),
    # google/gemma-2-2b-it's fields (soft-caps 30 / 50, local layer first); a window of 4 tokens so sequences
    # longer than 4 exercise the sliding mask.
    "gemma2": dict(head_dim=16, hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh",
                   rms_norm_eps=1e-6, query_pre_attn_scalar=16, sliding_window=4, rope_theta=10_000.0,
                   final_logit_softcapping=30.0, attn_logit_softcapping=50.0, attention_bias=False,
                   attention_dropout=0.0, cache_implementation="hybrid", tie_word_embeddings=True,
                   initializer_range=0.02),
}

_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Tuning a language model needs data, a schedule and patience.",
    "JAX compiles numerical programs for CPUs, GPUs and TPUs.",
    "Hello world! How are you today? I am fine, thank you.",
    "Rotary position embeddings rotate queries and keys by position.",
    "def add(a, b):\n    return a + b\n",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000.",
]

# Special tokens in id order (they come first in these tiny vocabularies; Gemma's real ids are the same).
_SPECIALS = {
    "gemma3": ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
    "gemma": ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
    "gemma2": ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
    "qwen3": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    "qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
}
_CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
           "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
_GEMMA_CHAT = ("{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant'"
               " else message['role'] %}<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n"
               "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
_CHAT_TEMPLATE = {
    "gemma3": _GEMMA_CHAT,
    "gemma": _GEMMA_CHAT,
    "gemma2": _GEMMA_CHAT,
    "qwen3": _CHATML,
    "qwen2": _CHATML,
    "llama3": ("{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}"
               "<|end_header_id|>\n\n{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
               "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"),
}
# bos/eos/pad as each family's chat models set them: Gemma and Llama prepend a BOS, Qwen has none;
# Llama 3 has no pad token at all; gemma-2b-it's generation_config stops at <eos> only.
_TOKENS = {
    "gemma3": dict(bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>", stop=["<eos>", "<end_of_turn>"]),
    "gemma": dict(bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>", stop=["<eos>"]),
    "gemma2": dict(bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>", stop=["<eos>", "<end_of_turn>"]),
    "qwen3": dict(bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None, stop=["<|im_end|>", "<|endoftext|>"]),
    "qwen2": dict(bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None, stop=["<|im_end|>", "<|endoftext|>"]),
    "llama3": dict(bos="<|begin_of_text|>", eos="<|eot_id|>", pad=None, unk=None,
                   stop=["<|end_of_text|>", "<|eot_id|>"]),
}


def write_tiny_checkpoint(folder: Path, family: str, seed: int = 0, **overrides) -> Path:
    """The folder, holding a complete HF checkpoint of `family` with random weights from `seed`."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    style = overrides.pop("config_style", "v4")
    weights_dtype = overrides.pop("weights_dtype", "float32")
    head_dim_in_config = overrides.pop("head_dim_in_config", True)
    if style not in ("v4", "v5", "multimodal") or (style == "multimodal" and family != "gemma3"):
        raise ValueError(f"config_style {style!r} is not available for {family}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    ids = _write_tokenizer(folder, family)
    text = {"model_type": _MODEL_TYPE[family], **_BASE, **_FAMILY_CONFIG[family], **overrides}
    tokens = _TOKENS[family]
    text["bos_token_id"] = ids[tokens["bos"]] if tokens["bos"] else ids["<|endoftext|>"]  # Qwen names one anyway
    text["eos_token_id"] = ids[tokens["eos"]] if family != "llama3" else [ids[t] for t in tokens["stop"]]
    text["pad_token_id"] = ids[tokens["pad"]] if tokens["pad"] else None
    if not head_dim_in_config:
        text.pop("head_dim", None)

    tensors = _random_weights(family, text, np.random.default_rng(seed))
    if style == "multimodal":  # the text tower's weights sit under language_model.* in these checkpoints
        tensors = {("language_model." + k if k.startswith("model.") else k): v for k, v in tensors.items()}
    _save_safetensors(folder / "model.safetensors", tensors, weights_dtype)

    version = "5.12.1" if style == "v5" else "4.50.0"
    dtype_field = "dtype" if style == "v5" else "torch_dtype"
    if style == "v5":
        text = _to_rope_parameters(text, family)
    if style == "multimodal":
        config = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
                  "boi_token_index": 255999, "eoi_token_index": 256000, "image_token_index": 262144,
                  "mm_tokens_per_image": 256, "text_config": text, "tie_word_embeddings": text["tie_word_embeddings"],
                  "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 1152, "num_hidden_layers": 27},
                  dtype_field: weights_dtype, "transformers_version": version}
    else:
        config = {"architectures": [_ARCHITECTURE[family]], **text, dtype_field: weights_dtype,
                  "transformers_version": version, "use_cache": True}
    _write_json(folder / "config.json", config)
    generation = {"bos_token_id": text["bos_token_id"], "eos_token_id": [ids[t] for t in tokens["stop"]],
                  "transformers_version": version}
    if tokens["pad"]:
        generation["pad_token_id"] = ids[tokens["pad"]]
    _write_json(folder / "generation_config.json", generation)
    return folder


def write_cached_snapshot(cache: Path, repo_id: str, family: str, revision: str = "0123abcd", **overrides) -> Path:
    """A tiny checkpoint as `hf download repo_id` leaves it in the Hugging Face cache:
    models--<org>--<name>/refs/main naming the snapshot folder's revision."""
    repo = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    write_tiny_checkpoint(repo / "snapshots" / revision, family, **overrides)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return repo / "snapshots" / revision


def _random_weights(family: str, cfg: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """HF tensor names and shapes ([out, in] for linear maps). Scales keep activations near unit size so
    a transposed or misplaced tensor moves the logits by O(1), far above the parity tolerance."""
    d, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    n, k = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    h = cfg.get("head_dim") or d // n

    def linear(out_dim, in_dim):
        return rng.normal(0.0, in_dim**-0.5, (out_dim, in_dim)).astype(np.float32)

    def norm(dim):  # Gemma stores the offset from 1 (it scales by 1 + w); the others store the scale
        w = rng.normal(0.0, 0.1, dim)
        return (w if family in _GEMMAS else 1.0 + w).astype(np.float32)

    # Gemma multiplies embeddings by sqrt(hidden_size); all families decode with them when tied.
    t = {"model.embed_tokens.weight": rng.normal(0.0, d**-0.5, (v, d)).astype(np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t[p + "self_attn.q_proj.weight"] = linear(n * h, d)
        t[p + "self_attn.k_proj.weight"] = linear(k * h, d)
        t[p + "self_attn.v_proj.weight"] = linear(k * h, d)
        t[p + "self_attn.o_proj.weight"] = linear(d, n * h)
        if family == "qwen2":  # Qwen2 always has q/k/v biases (and none on o_proj)
            for name, size in (("q", n * h), ("k", k * h), ("v", k * h)):
                t[p + f"self_attn.{name}_proj.bias"] = rng.normal(0.0, 0.5, size).astype(np.float32)
        if family in ("qwen3", "gemma3"):
            t[p + "self_attn.q_norm.weight"] = norm(h)
            t[p + "self_attn.k_norm.weight"] = norm(h)
        t[p + "mlp.gate_proj.weight"] = linear(f, d)
        t[p + "mlp.up_proj.weight"] = linear(f, d)
        t[p + "mlp.down_proj.weight"] = linear(d, f)
        t[p + "input_layernorm.weight"] = norm(d)
        t[p + "post_attention_layernorm.weight"] = norm(d)
        if family in ("gemma2", "gemma3"):  # Gemma 1 has no sandwich norms
            t[p + "pre_feedforward_layernorm.weight"] = norm(d)
            t[p + "post_feedforward_layernorm.weight"] = norm(d)
    t["model.norm.weight"] = norm(d)
    if not cfg.get("tie_word_embeddings", family in _GEMMAS):
        t["lm_head.weight"] = linear(v, d)
    return t


def _save_safetensors(path: Path, tensors: dict[str, np.ndarray], weights_dtype: str) -> None:
    from safetensors.numpy import save_file

    if weights_dtype == "bfloat16":
        import ml_dtypes

        tensors = {name: t.astype(ml_dtypes.bfloat16) for name, t in tensors.items()}
    elif weights_dtype != "float32":
        raise ValueError(f"weights_dtype must be float32 or bfloat16, got {weights_dtype!r}")
    save_file(tensors, str(path), metadata={"format": "pt"})


def _to_rope_parameters(text: dict, family: str) -> dict:
    """config.json fields as transformers 5.x writes them: rope_theta/rope_scaling folded into
    rope_parameters (per layer type for Gemma 3), layer_types spelled out."""
    text = dict(text)
    theta, scaling = text.pop("rope_theta"), text.pop("rope_scaling", None) or {}
    full = {"rope_type": "default", **scaling, "rope_theta": theta}
    if family == "gemma3":
        local = {"rope_type": "default", "rope_theta": text.pop("rope_local_base_freq")}
        text["rope_parameters"] = {"full_attention": full, "sliding_attention": local}
        pattern = text.pop("sliding_window_pattern")
        text["_sliding_window_pattern"] = pattern
        text["layer_types"] = ["sliding_attention" if (i + 1) % pattern else "full_attention"
                               for i in range(text["num_hidden_layers"])]
    else:
        text["rope_parameters"] = full
        if family == "gemma2":
            text["layer_types"] = ["sliding_attention" if (i + 1) % 2 else "full_attention"
                                   for i in range(text["num_hidden_layers"])]
        if family in ("qwen2", "qwen3"):
            text["layer_types"] = ["full_attention"] * text["num_hidden_layers"]
            if not text.get("use_sliding_window"):
                text["sliding_window"] = None  # 5.x drops the window when it is switched off
    return text


def _write_tokenizer(folder: Path, family: str) -> dict[str, int]:
    """A byte-level BPE (lossless round trip) with the family's special tokens; returns token -> id."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = _SPECIALS[family]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_SENTENCES, trainer)
    ids = {token: tokenizer.token_to_id(token) for token in specials}
    tokens = _TOKENS[family]
    if tokens["bos"]:  # the hub's Gemma and Llama tokenizer.json prepend BOS in their post-processor
        bos = tokens["bos"]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, ids[bos])])
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.save(str(folder / "tokenizer.json"))

    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": tokens["bos"], "eos_token": tokens["eos"], "pad_token": tokens["pad"],
        "add_bos_token": bool(tokens["bos"]), "add_eos_token": False,
        "clean_up_tokenization_spaces": False, "model_max_length": 512,
        "chat_template": _CHAT_TEMPLATE[family],
        "added_tokens_decoder": {str(ids[t]): {"content": t, "special": True, "lstrip": False, "rstrip": False,
                                               "normalized": False, "single_word": False} for t in specials},
    }
    if tokens["unk"]:
        tokenizer_config["unk_token"] = tokens["unk"]
    _write_json(folder / "tokenizer_config.json", tokenizer_config)
    return ids


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")
