"""A Hugging Face checkpoint folder is checked before anything trains on it, and a hub id
resolves offline from the Hugging Face cache; every problem names the file and what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.hf_fixtures import FAMILIES, write_cached_snapshot, write_tiny_checkpoint
from training.catalog import ModelNotAvailable, available_models, resolve_model
from training.hf_checkpoint import BrokenCheckpoint, read_checkpoint


def _edit_config(folder: Path, **fields) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **fields}))


@pytest.mark.parametrize("family", FAMILIES)
def test_a_fixture_of_each_family_passes_and_is_sized(tmp_path, family):
    checkpoint = read_checkpoint(write_tiny_checkpoint(tmp_path / family, family))
    assert checkpoint.family == family
    assert checkpoint.num_layers == checkpoint.config["num_hidden_layers"]
    assert 0 < checkpoint.tokenizer_vocab <= checkpoint.config["vocab_size"]
    assert checkpoint.num_parameters > 0


def test_layer_count_that_differs_from_the_weights_is_named(tmp_path):
    folder = write_tiny_checkpoint(tmp_path / "m", "qwen3")
    _edit_config(folder, num_hidden_layers=5)
    with pytest.raises(BrokenCheckpoint, match="num_hidden_layers is 5, but the safetensors hold 2") as caught:
        read_checkpoint(folder)
    assert caught.value.path == folder / "config.json"


def test_a_wrong_tie_flag_is_named_both_ways(tmp_path):
    tied = write_tiny_checkpoint(tmp_path / "tied", "qwen3", tie_word_embeddings=True)
    _edit_config(tied, tie_word_embeddings=False)
    with pytest.raises(BrokenCheckpoint, match="no lm_head.weight"):
        read_checkpoint(tied)
    untied = write_tiny_checkpoint(tmp_path / "untied", "llama3", tie_word_embeddings=False)
    _edit_config(untied, tie_word_embeddings=True)
    with pytest.raises(BrokenCheckpoint, match="own lm_head.weight, which would be ignored"):
        read_checkpoint(untied)


def test_a_missing_shard_and_a_truncated_file_are_named(tmp_path):
    folder = write_tiny_checkpoint(tmp_path / "m", "llama3")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(BrokenCheckpoint, match="shard missing") as caught:
        read_checkpoint(folder)
    assert caught.value.path.name == "model-00001-of-00002.safetensors"
    (folder / "model.safetensors.index.json").unlink()
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(BrokenCheckpoint, match="truncated"):
        read_checkpoint(folder)


def test_a_bad_or_oversized_tokenizer_is_named(tmp_path):
    folder = write_tiny_checkpoint(tmp_path / "m", "gemma3")
    _edit_config(folder, vocab_size=10)
    with pytest.raises(BrokenCheckpoint, match="more than the model's vocab_size 10") as caught:
        read_checkpoint(folder)
    assert caught.value.path.name == "tokenizer.json"
    folder = write_tiny_checkpoint(tmp_path / "n", "gemma3")
    (folder / "tokenizer.json").write_text("{not json")
    with pytest.raises(BrokenCheckpoint, match="not valid JSON") as caught:
        read_checkpoint(folder)
    assert caught.value.path.name == "tokenizer.json"


def test_an_unsupported_family_names_model_type(tmp_path):
    folder = write_tiny_checkpoint(tmp_path / "m", "qwen2")
    _edit_config(folder, model_type="mistral")
    with pytest.raises(BrokenCheckpoint, match="model_type 'mistral' is not supported"):
        read_checkpoint(folder)


def test_a_hub_id_resolves_offline_from_the_cache_and_is_listed(tmp_path):
    cache = tmp_path / "hub"
    snapshot = write_cached_snapshot(cache, "google/gemma-2b-it", "gemma")
    source = resolve_model("google/gemma-2b-it", tmp_path / "models", cache)
    assert (source.kind, source.folder, source.revision) == ("hf-cache", snapshot, "0123abcd")
    with pytest.raises(ModelNotAvailable, match="hf download Qwen/Qwen3-0.6B"):
        resolve_model("Qwen/Qwen3-0.6B", tmp_path / "models", cache)
    write_tiny_checkpoint(tmp_path / "models" / "org" / "local", "qwen3")
    listed = {m.source.model_id: m for m in available_models(tmp_path / "models", cache, 64, 32)}
    assert set(listed) == {"tiny-gemma3", "org/local", "google/gemma-2b-it"}
    assert listed["org/local"].family == "qwen3" and listed["org/local"].memory.fits_lora
    assert listed["google/gemma-2b-it"].source.kind == "hf-cache" and listed["google/gemma-2b-it"].problem is None
