"""The model-family registry (training/families/): every family is found by its config.json model_types, has
LoRA targets for attention and MLP, and lora_modules gives the regexes it gave before the registry existed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from training.base_model import lora_modules
from training.families import FAMILIES, family, family_of
from training.hf_config import family_of as hf_config_family_of

_EINSUMS = ".*qkv_einsum|.*q_einsum|.*kv_einsum|.*attn_vec_einsum|.*gate_proj|.*up_proj|.*down_proj"
_PROJS = ".*q_proj|.*k_proj|.*v_proj|.*o_proj|.*gate_proj|.*up_proj|.*down_proj"
# lora_modules(family, "all") as training/base_model.py computed it from its own LORA_TARGETS dict
LORA_ALL_BEFORE = {"gemma3": _EINSUMS, "qwen3": _PROJS, "llama3": _PROJS, "qwen2": _PROJS, "gemma": _EINSUMS,
                   "gemma2": _EINSUMS}


def test_the_registry_holds_every_family_once():
    assert [f.name for f in FAMILIES] == ["gemma3", "qwen3", "llama3", "qwen2", "gemma", "gemma2"]
    assert [family(f.name) for f in FAMILIES] == list(FAMILIES)


@pytest.mark.parametrize("spec", FAMILIES, ids=lambda f: f.name)
def test_each_family_maps_its_model_types(spec):
    assert spec.model_types
    for model_type in spec.model_types:
        assert family_of({"model_type": model_type}) == hf_config_family_of({"model_type": model_type}) == spec.name


@pytest.mark.parametrize("spec", FAMILIES, ids=lambda f: f.name)
def test_each_family_has_attention_and_mlp_lora_targets(spec):
    assert set(spec.lora_targets) == {"attention", "mlp"}
    assert all(spec.lora_targets.values())
    assert lora_modules(spec.name, "attention") == spec.lora_targets["attention"]
    assert lora_modules(spec.name, "mlp") == spec.lora_targets["mlp"]


@pytest.mark.parametrize("name", list(LORA_ALL_BEFORE))
def test_lora_modules_all_is_unchanged(name):
    assert lora_modules(name, "all") == LORA_ALL_BEFORE[name]


def test_an_unknown_model_type_is_refused_as_before():
    with pytest.raises(ValueError) as refused:
        hf_config_family_of({"model_type": "mistral"})
    assert str(refused.value) == ("model_type 'mistral' is not supported; supported: gemma, gemma2, gemma3, "
                                  "gemma3_text, llama, qwen2, qwen3")


def test_an_unknown_family_name_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="family must be one of gemma3, qwen3, llama3, qwen2, gemma, gemma2, got 'x'"):
        family("x")


def test_only_gemma3_and_qwen3_have_a_merged_exporter_and_four_families_the_rope_override():
    assert {f.name: f.merge_exporter for f in FAMILIES if f.merge_exporter} == {
        "gemma3": "tunix.models.gemma3.params", "qwen3": "tunix.models.qwen3.params"}
    assert {f.name for f in FAMILIES if f.rope_override} == {"llama3", "qwen3", "gemma", "gemma2"}


def test_importing_the_registry_and_config_reader_imports_no_jax():
    """The families import tunix only inside the functions that build or load a model."""
    code = ("import sys, training.families, training.hf_config; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'jax', 'tunix', 'flax'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout == "[]\n"
