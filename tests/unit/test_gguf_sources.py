"""GGUF files, Ollama and LM Studio models as base models, checked at the API before anything is published:
found offline and listed with their facts (headers only), refused with a 422 naming base_model_id when a
file cannot be converted (a quantization gguf cannot dequantize, a truncated download), and hostile ids
(traversal, a blob that is not what its manifest says, a link out of the models folder) refused without
saying anything about the server's files."""

from __future__ import annotations

import os
import struct

import httpx
import numpy as np
import pytest

from adapters.settings import Settings
from app.main import create_app
from service.read.models import _base_models
from tests.support.gguf_fixtures import (sha256_of, smollm2_gguf, truncated_copy, write_ollama_store,
                                 write_tiny_gguf)
from tests.support.specs import example_spec
from tests.unit.fakes import fake_gateway
from training.catalog import ModelNotAvailable, resolve_in
from training.folders import Folders
from training.gguf.config import llama3_divisors, llama3_scaling
from training.gguf.header import BrokenGguf, read_header


@pytest.fixture
def folders(tmp_path):
    for name in ("models", "ollama", "lmstudio", "outside"):
        (tmp_path / name).mkdir()
    return Folders(models=tmp_path / "models", ollama=tmp_path / "ollama", lmstudio=tmp_path / "lmstudio",
                   converted=tmp_path / "converted")


@pytest.fixture
async def api(folders):
    gateway = fake_gateway(projects=False, wait_s=0, folders=folders)
    app = create_app(Settings(), gateway=gateway)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
            yield client, gateway


async def _rule(client, model_id: str) -> str:
    answer = await client.post("/api/tuning/jobs", json=example_spec(base_model_id=model_id))
    assert answer.status_code == 422, answer.text
    (rule,) = [d["rule"] for d in answer.json()["details"] if d["field"] == "base_model_id"]
    return rule


async def test_an_ollama_model_resolves_offline_is_listed_and_a_job_can_name_it(api, folders):
    client, gateway = api
    write_ollama_store(folders.ollama, smollm2_gguf())
    digest = sha256_of(smollm2_gguf())
    source = resolve_in("ollama:smollm2:135m", folders)
    assert (source.kind, source.folder, source.gguf.path) == ("ollama", None, folders.ollama / "blobs" / f"sha256-{digest}")
    assert (source.gguf.sha256, source.gguf.quantization) == (digest, "Q4_1")
    for same in ("ollama:library/smollm2:135m", "ollama:registry.ollama.ai/library/smollm2:135m"):
        assert resolve_in(same, folders).gguf.path == source.gguf.path
    (listed,) = [m for m in _base_models(folders) if m.source == "ollama"]
    assert (listed.model_id, listed.family, listed.parameters, listed.quantization, listed.problem) == (
        "ollama:smollm2:135m", "llama3", 134_515_008, "Q4_1", None)
    assert listed.fits_lora and listed.folder == str(source.gguf.path)
    over_http = (await client.get("/api/base-models")).json()
    assert {"model_id": "ollama:smollm2:135m", "source": "ollama", "quantization": "Q4_1"}.items() <= \
        next(m for m in over_http if m["source"] == "ollama").items()
    created = await client.post("/api/tuning/jobs", json=example_spec(base_model_id="ollama:smollm2:135m"))
    assert created.status_code == 202, created.text
    assert gateway.publisher.published[-1].payload.spec.base_model_id == "ollama:smollm2:135m"
    assert not folders.converted.exists()  # the gateway reads the header; converting is a trial's work
    assert "no manifest registry.ollama.ai/library/smollm2/latest" in await _rule(client, "ollama:smollm2")


@pytest.mark.parametrize("model_id", ["ollama:../../etc/passwd", "ollama:smollm2:../../../etc/passwd",
                                      "ollama:/etc/passwd", "ollama:a/b/c/d:e", "ollama:..:latest", "ollama:"])
async def test_an_ollama_id_outside_the_pattern_is_422_naming_the_rule_only(api, folders, model_id):
    client, gateway = api
    rule = await _rule(client, model_id)
    assert "must be ollama:NAME[:TAG]" in rule and "root:" not in rule and str(folders.ollama) not in rule
    assert gateway.publisher.published == []


async def test_a_blob_that_does_not_hash_to_its_manifest_digest_is_422(api, folders, tmp_path):
    client, gateway = api
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf")
    claimed = "ab" * 32  # the blob is stored under this name, but holds other bytes
    write_ollama_store(folders.ollama, tiny, name="tiny", tag="1b", digest=claimed)
    rule = await _rule(client, "ollama:tiny:1b")
    assert "does not hash to the sha256 its manifest names" in rule and str(tmp_path / "tiny.gguf") not in rule
    with pytest.raises(ModelNotAvailable):
        resolve_in("ollama:tiny:1b", folders)  # in every trial as at the gateway
    assert gateway.publisher.published == []


async def test_a_gguf_outside_the_models_folder_is_422_alike_for_linked_existing_and_missing(api, folders, tmp_path):
    client, gateway = api
    outside = write_tiny_gguf(tmp_path / "outside" / "real.gguf")
    os.symlink(outside, folders.models / "linked.gguf")
    (folders.models / "dir").mkdir()
    os.symlink(tmp_path / "outside", folders.models / "dir" / "out")
    shown = {}
    for model_id in ("linked.gguf", "missing.gguf", str(outside), str(tmp_path / "outside" / "missing.gguf"),
                     "dir/out/real.gguf", "../outside/real.gguf"):
        shown[model_id] = (await _rule(client, model_id)).replace(model_id, "<given>")
    assert len(set(shown.values())) == 1, shown
    assert "architecture" not in next(iter(shown.values())) and "F32" not in next(iter(shown.values()))
    os.mkfifo(folders.models / "fifo.gguf")  # never opened: not a regular file
    assert "is not available offline" in await _rule(client, "fifo.gguf")
    assert [m.model_id for m in _base_models(folders) if m.source == "gguf"] == []  # links out are not listed
    assert gateway.publisher.published == []


async def test_a_quantization_gguf_cannot_dequantize_is_422_naming_base_model_id_and_the_type(api, folders):
    client, gateway = api
    write_tiny_gguf(folders.models / "q8k.gguf", "Q8_K")
    rule = await _rule(client, "q8k.gguf")
    assert "quantization Q8_K cannot be dequantized" in rule and "supported: " in rule and "Q4_K" in rule
    (listed,) = [m for m in _base_models(folders) if m.model_id == "q8k.gguf"]
    assert listed.source == "gguf" and "Q8_K" in listed.problem and listed.fits_lora is False
    assert gateway.publisher.published == []


@pytest.mark.parametrize(("keep", "words"), [(50_000_000, "truncated: tensor"), (4_000, "truncated: the file ends")])
async def test_a_truncated_gguf_is_422_naming_base_model_id(api, folders, keep, words):
    client, gateway = api
    truncated_copy(smollm2_gguf(), folders.models / "cut" / "smollm2.gguf", keep)
    rule = await _rule(client, "cut/smollm2.gguf")
    assert words in rule and str(folders.models / "cut" / "smollm2.gguf") in rule
    assert gateway.publisher.published == []


def test_lm_studio_files_are_listed_and_resolve_by_id_or_absolute_path(folders):
    path = write_tiny_gguf(folders.lmstudio / "lmstudio-community" / "tiny-GGUF" / "tiny-F16.gguf", "F16")
    write_tiny_gguf(folders.lmstudio / "lmstudio-community" / "tiny-GGUF" / "mmproj-tiny.gguf")
    write_tiny_gguf(folders.models / "org" / "tiny.gguf", "Q8_0")
    listed = {m.model_id: m for m in _base_models(folders) if m.source in ("gguf", "lmstudio")}
    assert set(listed) == {"lmstudio:lmstudio-community/tiny-GGUF/tiny-F16.gguf", "org/tiny.gguf"}
    assert (listed["org/tiny.gguf"].quantization, listed["org/tiny.gguf"].family) == ("Q8_0", "llama3")
    assert listed["lmstudio:lmstudio-community/tiny-GGUF/tiny-F16.gguf"].quantization == "F16"
    assert resolve_in("lmstudio:lmstudio-community/tiny-GGUF/tiny-F16.gguf", folders).gguf.path == path
    assert resolve_in(str(path), folders).kind == "gguf"
    with pytest.raises(ModelNotAvailable, match="must be lmstudio:PUBLISHER/MODEL/FILE.gguf"):
        resolve_in("lmstudio:../../etc/passwd.gguf", folders)


def test_a_header_that_claims_more_than_it_is_read_with_is_refused_without_reading_on(tmp_path):
    claims = tmp_path / "claims.gguf"
    claims.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**40, 1))
    with pytest.raises(BrokenGguf, match="tensor count is 1,099,511,627,776"):
        read_header(claims)
    other = tmp_path / "other.gguf"
    other.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(BrokenGguf, match="not a GGUF file"):
        read_header(other)


@pytest.mark.parametrize(("theta", "head_dim", "factor"), [(500_000.0, 128, 8.0), (500_000.0, 64, 32.0)])
def test_llama3_rope_scaling_is_recovered_from_llama_cpp_s_rope_freqs(theta, head_dim, factor):
    divisors = llama3_divisors(theta, head_dim, factor, 1.0, 4.0, 8192).astype("float32").astype(float)
    assert llama3_scaling(divisors, theta, head_dim, None) == {
        "rope_type": "llama3", "factor": factor, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}


def test_nested_metadata_arrays_deeper_than_gguf_writes_are_refused(tmp_path):
    nested = tmp_path / "nested.gguf"
    key = b"k"
    body = struct.pack("<Q", len(key)) + key + struct.pack("<I", 9)  # an array ...
    body += (struct.pack("<IQ", 9, 1)) * 5000  # ... of arrays, 5000 deep
    nested.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + body)
    with pytest.raises(BrokenGguf, match="nested more than 3 deep"):
        read_header(nested)


@pytest.mark.parametrize(("key", "value"), [
    ("llama.attention.layer_norm_rms_epsilon", "abc"), ("llama.rope.freq_base", float("nan")),
    ("llama.rope.freq_base", 1e300), ("llama.block_count", 0), ("llama.attention.head_count", "9"),
    ("tokenizer.ggml.model", [1, 2]), ("tokenizer.ggml.pre", 7), ("tokenizer.ggml.tokens", "abc"),
    ("tokenizer.ggml.token_type", ["x"]), ("tokenizer.ggml.eos_token_id", 10**9), ("general.architecture", None),
])
def test_metadata_of_the_wrong_type_or_range_is_a_broken_gguf_naming_the_key(tmp_path, monkeypatch, key, value):
    """Never a ValueError or TypeError (a 500 at create, an opaque trial failure)."""
    import dataclasses

    import training.sources.gguf_file as gguf_file

    header = read_header(write_tiny_gguf(tmp_path / "tiny.gguf"))
    odd = dataclasses.replace(header, metadata={**header.metadata, key: value})
    monkeypatch.setattr(gguf_file, "read_header", lambda path: odd)
    with pytest.raises(BrokenGguf, match=key.split(".")[-1] if key != "general.architecture" else "architecture"):
        gguf_file.gguf_checkpoint(tmp_path / "tiny.gguf")


def test_a_tensor_without_a_hugging_face_name_or_of_the_wrong_shape_is_refused_at_create(tmp_path, monkeypatch):
    import dataclasses

    import training.sources.gguf_file as gguf_file

    header = read_header(write_tiny_gguf(tmp_path / "tiny.gguf"))
    q = header.tensors["blk.0.attn_q.weight"]
    for tensors, words in (({**header.tensors, "blk.0.mystery.weight": q}, "'blk.0.mystery.weight' has no Hugging Face"),
                           ({**header.tensors, "blk.0.attn_q.weight": dataclasses.replace(q, shape=(256, 192))},
                            "has 192 rows, not 4 heads of 64")):
        odd = dataclasses.replace(header, tensors=tensors)
        monkeypatch.setattr(gguf_file, "read_header", lambda path, odd=odd: odd)
        with pytest.raises(BrokenGguf, match=words):
            gguf_file.gguf_checkpoint(tmp_path / "tiny.gguf")
    huge = dataclasses.replace(header, metadata={**header.metadata, "llama.block_count": 2**31})
    monkeypatch.setattr(gguf_file, "read_header", lambda path: huge)
    with pytest.raises(BrokenGguf, match="block_count must be an integer from 1 to 1,024"):
        gguf_file.gguf_checkpoint(tmp_path / "tiny.gguf")


def test_a_rope_freqs_tensor_becomes_llama3_rope_scaling_in_the_converted_config(tmp_path):
    import json

    from training.gguf.convert import convert

    divisors = llama3_divisors(10_000.0, 64, 8.0, 1.0, 4.0, 256)  # the tiny model's theta and head_dim
    done = convert(write_tiny_gguf(tmp_path / "llama31.gguf", rope_freqs=divisors), tmp_path / "converted")
    config = json.loads((done.folder / "config.json").read_text())
    assert config["rope_scaling"] == {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 256}
    from safetensors import safe_open

    with safe_open(done.folder / "model.safetensors", "np") as f:
        assert "rope_freqs.weight" not in set(f.keys()) and "model.layers.0.self_attn.q_proj.weight" in set(f.keys())
    with pytest.raises(BrokenGguf, match="rope_freqs.weight is not Llama 3 RoPE scaling"):
        convert(write_tiny_gguf(tmp_path / "odd.gguf", rope_freqs=[1.0, 3.0] * 16), tmp_path / "converted")


@pytest.mark.parametrize(("arch", "family", "extra"), [
    ("llama", "llama3", set()), ("qwen2", "qwen2", {"q_proj.bias", "k_proj.bias", "v_proj.bias"}),
    ("qwen3", "qwen3", {"q_norm.weight", "k_norm.weight"})])
def test_each_architecture_s_tensors_get_their_hf_names_and_only_llama_is_unpermuted(tmp_path, arch, family, extra):
    import gguf
    from safetensors.numpy import load_file

    from training.gguf.convert import convert
    from training.gguf.tensors import unpermute
    from training.sources.gguf_file import gguf_checkpoint

    path = write_tiny_gguf(tmp_path / f"{arch}.gguf", arch=arch)
    assert gguf_checkpoint(path).family == family
    weights = load_file(convert(path, tmp_path / "converted").folder / "model.safetensors")
    attention = {name.split("self_attn.")[1] for name in weights if "self_attn." in name}
    assert attention == {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"} | extra
    source = {t.name: t for t in gguf.GGUFReader(path).tensors}
    q, k = (np.asarray(source[f"blk.0.attn_{x}.weight"].data) for x in ("q", "k"))
    if arch == "llama":  # llama.cpp interleaved each head's rotary halves; undone with 4 heads, k with 2
        q, k = unpermute(q, 4), unpermute(k, 2)
    assert np.array_equal(weights["model.layers.0.self_attn.q_proj.weight"], q)
    assert np.array_equal(weights["model.layers.0.self_attn.k_proj.weight"], k)


def test_a_cache_entry_of_another_converter_version_is_converted_again_and_replaced(tmp_path):
    import json

    from training.gguf.convert import CONVERTER, convert

    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    first = convert(path, tmp_path / "converted")
    origin = json.loads((first.folder / "gguf.json").read_text())
    (first.folder / "gguf.json").write_text(json.dumps({**origin, "converter": "an older converter"}))
    (first.folder / "config.json").write_text("{}")  # what the older converter wrote
    again = convert(path, tmp_path / "converted")
    assert (again.cached, again.folder) == (False, first.folder)
    assert json.loads((again.folder / "gguf.json").read_text())["converter"] == CONVERTER
    assert json.loads((again.folder / "config.json").read_text())["model_type"] == "llama"
    assert convert(path, tmp_path / "converted").cached
    assert [p.name for p in (tmp_path / "converted").iterdir()] == [first.sha256]  # nothing left aside


def test_listing_reads_headers_only_never_hashing_or_converting(folders, monkeypatch):
    import hashlib

    write_ollama_store(folders.ollama, write_tiny_gguf(folders.models / "tiny.gguf"), name="tiny", tag="1b")

    def no_hashing(*args, **kwargs):
        raise AssertionError("a listing hashed a file")

    monkeypatch.setattr(hashlib, "file_digest", no_hashing)
    listed = {m.model_id: m for m in _base_models(folders)}
    assert listed["ollama:tiny:1b"].problem is None and listed["tiny.gguf"].problem is None
    assert listed["ollama:tiny:1b"].quantization == "F32" and not folders.converted.exists()
