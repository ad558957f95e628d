"""SmolLM2-135M-Instruct's real GGUF file (Q4_1 weights, Q8_0 embedding) converted into a Hugging Face
folder, checked against what gguf-py itself reads from the file: every weight against an independent
dequantize (gguf.GGUFReader + gguf.quants.dequantize) with llama.cpp's q/k permutation applied to the
converted rows (LlamaModel.permute), the config against the metadata, the tokenizer against the file's
own token list and llama.cpp's tokenization, the chat template as written."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import gguf
import numpy as np
import pytest
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from tests.support.gguf_fixtures import sha256_of, smollm2_gguf
from training.gguf.convert import convert


@pytest.fixture(scope="module")
def reader():
    return gguf.GGUFReader(smollm2_gguf())


def _meta(reader, key):
    return reader.fields[key].contents()


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute, as llama.cpp applies it when writing the file."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# HF name part -> GGUF name part, written out here (the converter uses gguf-py's map).
_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
_LAYER = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
          "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
          "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def _gguf_name(hf: str) -> str:
    if hf in _NAMES:
        return _NAMES[hf]
    _, _, layer, rest = hf.split(".", 3)
    return f"blk.{layer}.{_LAYER[rest.removesuffix('.weight')]}.weight"


def test_every_weight_equals_the_dequantized_gguf_tensor_with_llama_cpp_s_permutation(smollm2_converted, reader):
    weights = load_file(smollm2_converted.folder / "model.safetensors")
    source = {t.name: t for t in reader.tensors}
    assert len(weights) == len(source) == 272 and "lm_head.weight" not in weights  # tied: no output.weight
    for hf_name, converted in weights.items():
        t = source[_gguf_name(hf_name)]
        expected = gguf.quants.dequantize(t.data, t.tensor_type).reshape(tuple(int(d) for d in reversed(t.shape)))
        assert converted.dtype == np.float32 and converted.shape == expected.shape, hf_name
        if hf_name.endswith("q_proj.weight"):
            converted = llama_cpp_permute(converted, 9)
        elif hf_name.endswith("k_proj.weight"):
            converted = llama_cpp_permute(converted, 3)  # k is permuted with the KV head count
        assert np.array_equal(converted, expected), hf_name
    q = weights["model.layers.0.self_attn.q_proj.weight"]
    assert not np.array_equal(q, llama_cpp_permute(q, 9))  # the permutation is not the identity here


def test_config_is_what_the_metadata_says(smollm2_converted, reader):
    config = json.loads((smollm2_converted.folder / "config.json").read_text())
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"]
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"],
            config["num_key_value_heads"], config["intermediate_size"], config["vocab_size"]) == (
        _meta(reader, "llama.block_count"), _meta(reader, "llama.embedding_length"),
        _meta(reader, "llama.attention.head_count"), _meta(reader, "llama.attention.head_count_kv"),
        _meta(reader, "llama.feed_forward_length"), len(_meta(reader, "tokenizer.ggml.tokens")))
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"],
            config["num_key_value_heads"]) == (30, 576, 9, 3)
    assert config["tie_word_embeddings"] is True and config["rope_theta"] == 100000.0
    assert config["rms_norm_eps"] == 1e-5 and "rope_scaling" not in config
    assert smollm2_converted.quantization == "Q4_1" and smollm2_converted.sha256 == sha256_of(smollm2_gguf())
    origin = json.loads((smollm2_converted.folder / "gguf.json").read_text())
    assert origin["sha256"] == smollm2_converted.sha256 and origin["tensor_types"] == {"Q4_1": 210, "F32": 61, "Q8_0": 1}


@pytest.mark.parametrize(("text", "ids"), [
    # llama.cpp's tokenization of SmolLM2 ("smollm" pre-tokenizer: every digit on its own)
    ("Hello world! 123", [19556, 905, 17, 216, 33, 34, 35]),
    ("Café déjà vu.", [51, 1939, 2756, 32564, 90, 16739, 386, 101, 30]),
    ("  multiple   spaces", [216, 2701, 256, 5600]),
    ("<|im_start|>user\nWhat is the capital of France?<|im_end|>", None),
])
def test_tokenizer_ids_are_the_gguf_s_own_tokens(smollm2_converted, reader, text, ids):
    tok = Tokenizer.from_file(str(smollm2_converted.folder / "tokenizer.json"))
    tokens = _meta(reader, "tokenizer.ggml.tokens")
    got = tok.encode(text, add_special_tokens=False).ids
    if ids is not None:
        assert got == ids
    pieces = [tokens[i] for i in got]  # the file's own strings for those ids, byte-level as written
    byte_of = {v: k for k, v in _bytes_to_unicode().items()}
    specials = {"<|im_start|>", "<|im_end|>"}
    decoded = "".join(p if p in specials else bytes(byte_of[c] for c in p).decode("utf-8") for p in pieces)
    assert decoded == text
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        assert tok.encode(special, add_special_tokens=False).ids == [tokens.index(special)]


def test_special_ids_and_chat_template_come_from_the_metadata(smollm2_converted, reader):
    tokens = _meta(reader, "tokenizer.ggml.tokens")
    bos, eos = _meta(reader, "tokenizer.ggml.bos_token_id"), _meta(reader, "tokenizer.ggml.eos_token_id")
    config = json.loads((smollm2_converted.folder / "tokenizer_config.json").read_text())
    assert config["eos_token"] == tokens[eos] == "<|im_end|>"
    # SmolLM2's file says tokenizer.ggml.add_bos_token false: llama.cpp starts no prompt with BOS, nor does a run
    assert _meta(reader, "tokenizer.ggml.add_bos_token") is False and "bos_token" not in config
    assert config["chat_template"] == _meta(reader, "tokenizer.chat_template")
    generation = json.loads((smollm2_converted.folder / "generation_config.json").read_text())
    assert (generation["bos_token_id"], generation["eos_token_id"]) == (bos, eos) == (1, 2)
    from training.tokenizer import HfTokenizer

    loaded = HfTokenizer(smollm2_converted.folder)  # the project's own tokenizer reads the folder
    assert (loaded.bos_id, loaded.eos_id, loaded.vocab_size) == (None, 2, 49152)


def test_a_second_conversion_finds_the_cache_and_concurrent_ones_leave_one_entry(smollm2_converted, tmp_path):
    again = convert(smollm2_gguf(), smollm2_converted.folder.parent)
    assert again.cached and again.folder == smollm2_converted.folder
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: convert(smollm2_gguf(), tmp_path), range(2)))
    assert {r.folder for r in results} == {tmp_path / smollm2_converted.sha256}
    assert [p.name for p in tmp_path.iterdir()] == [smollm2_converted.sha256]  # no temporary folder left
    assert (tmp_path / smollm2_converted.sha256 / "model.safetensors").stat().st_size == \
        (smollm2_converted.folder / "model.safetensors").stat().st_size


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (byte-level BPE's alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def test_a_run_s_lineage_records_the_gguf_its_sha256_quantization_and_cache_entry(smollm2_converted, tmp_path):
    """What run.py writes as the manifest's "model": the base model's lineage (training/base_model.py)."""
    from tests.support.gguf_fixtures import link_or_copy
    from training.base_model import load_base
    from training.catalog import resolve_in
    from training.folders import Folders

    link_or_copy(smollm2_gguf(), tmp_path / "models" / "smollm2.gguf")
    folders = Folders(models=tmp_path / "models", converted=smollm2_converted.folder.parent)
    base = load_base(resolve_in("smollm2.gguf", folders), seed=0)
    assert base.family == "llama3" and base.lineage["source"] == "gguf"
    assert base.lineage["gguf"] == {"file": str(tmp_path / "models" / "smollm2.gguf"), "sha256": smollm2_converted.sha256,
                                    "quantization": "Q4_1", "cache_entry": str(smollm2_converted.folder)}
    assert base.lineage["folder"] == str(smollm2_converted.folder) and base.lineage["parameters"] == 134_515_008
