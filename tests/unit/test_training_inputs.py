"""Datasets, hyperparameters and job checks of the run pipeline (no JAX needed)."""

from __future__ import annotations

import os
from pathlib import Path

import json

import pytest

from training.catalog import ModelNotAvailable, resolve_model
from training.dataset_files import MalformedDataset
from training.datasets import UnknownDataset, available_datasets, load_dataset
from training.hyperparams import Hyperparameters, UnknownHyperparameter
from training.folders import Folders
from training.validate import validate_job


def test_high_card_duel_is_deterministic_with_disjoint_splits():
    first, second = load_dataset("ungar_hcd-v1", Path("datasets")), load_dataset("ungar_hcd-v1", Path("datasets"))
    assert first == second and first.content_hash.startswith("sha256:")
    assert len(first.train) + len(first.eval) == 52 * 51
    train_pairs = {t.prompt for t in first.train}
    assert not train_pairs & {t.prompt for t in first.eval}
    assert len(first.eval) == 530
    for trace in first.train[:200]:
        _, a, _, b = trace.prompt.split()
        ranks = "23456789TJQKA"
        expected = "P1" if ranks.index(a[0]) > ranks.index(b[0]) else "P2" if ranks.index(a[0]) < ranks.index(b[0]) else "tie"
        assert trace.final_answer == expected
    assert {t.final_answer for t in first.eval} == {"P1", "P2", "tie"}


def test_unknown_dataset_lists_the_available_keys(tmp_path):
    with pytest.raises(UnknownDataset) as caught:
        load_dataset("nope-v1", root=tmp_path)
    assert "available: ungar_hcd-v1" in str(caught.value)


def _write_dataset(root, key, train_lines, eval_lines):
    folder = root / key
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"name": key, "splits": {"train": "train.jsonl", "eval": "eval.jsonl"}}))
    (folder / "train.jsonl").write_text("\n".join(train_lines) + "\n")
    (folder / "eval.jsonl").write_text("\n".join(eval_lines) + "\n")


def test_on_disk_dataset_in_tunix_rt_format(tmp_path):
    line = lambda i: json.dumps({"trace_id": f"t{i}", "prompt": f"{i}+{i}", "final_answer": str(2 * i), "steps": ["add"]})  # noqa: E731
    _write_dataset(tmp_path, "adds-v1", [line(i) for i in range(5)], [line(9)])
    assert "adds-v1" in available_datasets(tmp_path)
    dataset = load_dataset("adds-v1", root=tmp_path)
    assert [t.final_answer for t in dataset.eval] == ["18"] and len(dataset.train) == 5
    assert dataset.train[0].steps == ("add",)


@pytest.mark.parametrize(("bad_line", "problem"), [
    ("{not json", "not valid JSON"),
    ('["a list"]', "must be a JSON object"),
    ('{"trace_id": "x", "prompt": "p"}', '"final_answer" must be a non-empty string'),
    ('{"trace_id": "x", "prompt": "p", "final_answer": "a", "steps": "one"}', '"steps" must be a list'),
])
def test_malformed_file_names_file_line_and_problem(tmp_path, bad_line, problem):
    good = json.dumps({"trace_id": "a", "prompt": "p", "final_answer": "f"})
    _write_dataset(tmp_path, "bad-v1", [good, good, bad_line], [good])
    with pytest.raises(MalformedDataset) as caught:
        load_dataset("bad-v1", root=tmp_path)
    assert str(caught.value).startswith("bad-v1/train.jsonl:3: ")  # named in the datasets folder, not the server's
    assert problem in str(caught.value)


def test_unknown_hyperparameter_is_an_error():
    with pytest.raises(UnknownHyperparameter, match="learnig_rate"):
        Hyperparameters.from_mapping({"learnig_rate": "0.1"})
    hp = Hyperparameters.from_mapping({"learning_rate": "3e-3", "batch_size": "16.0", "max_steps": 10})
    assert (hp.learning_rate, hp.batch_size, hp.max_steps) == (3e-3, 16, 10)
    with pytest.raises(ValueError, match="batch_size must be an integer"):
        Hyperparameters.from_mapping({"batch_size": 2.5})
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        Hyperparameters.from_mapping({"learning_rate": 0})


def test_hub_model_is_not_available_offline_and_says_how_to_provide_it(tmp_path):
    with pytest.raises(ModelNotAvailable, match="not available offline") as caught:
        resolve_model("google/gemma-2b-it", tmp_path, hf_cache=tmp_path / "hub")
    assert f"not a checkpoint folder under $TUNIX_MODELS_DIR ({tmp_path})" in str(caught.value)
    assert "hf download google/gemma-2b-it" in str(caught.value)
    folder = tmp_path / "google/gemma-2b-it"
    folder.mkdir(parents=True)
    assert resolve_model("google/gemma-2b-it", tmp_path).folder == folder.resolve()


def test_validate_job_names_each_problem():
    searched = {"search_space.learning_rate": "learning_rate", "fixed_params.batch_size": "batch_size"}
    assert validate_job("ungar_hcd-v1", "tiny-gemma3", "score", searched, Folders()) == []
    problems = dict(validate_job("x-v1", "nope/model", "accuracy", {**searched, "fixed_params.lr": "lr"}, Folders()))
    assert set(problems) == {"dataset_key", "base_model_id", "metric_name", "fixed_params.lr"}


def test_a_gpu_share_points_jax_at_the_gpu_and_caps_its_memory(monkeypatch):
    from training.jax_setup import use_accelerator

    monkeypatch.delenv("XLA_PYTHON_CLIENT_MEM_FRACTION", raising=False)
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    use_accelerator(0)
    assert os.environ["JAX_PLATFORMS"] == "cpu" and "XLA_PYTHON_CLIENT_MEM_FRACTION" not in os.environ
    use_accelerator(0.25)
    assert os.environ["JAX_PLATFORMS"] == "cuda" and os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.225"
