"""What a job names stays in its folder and is read safely (training/safe_files.py): dataset keys
under the datasets folder, model folders under the models folder or the Hugging Face cache, both
after following symlinks and refused in the same words whether or not the path exists; files
read only when regular and bounded, never blocking on a FIFO."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.job_spec import DATASET_KEY_PATTERN, JobSpec
from tests.support.hf_fixtures import write_tiny_checkpoint
from tests.support.specs import example_spec
from training.catalog import ModelNotAvailable, available_models, resolve_model
from training.dataset_files import MalformedDataset, read_examples
from training.datasets import DATASET_KEY, UnknownDataset, dataset_exists, load_dataset
from training.folders import Folders
from training.hf_checkpoint import BrokenCheckpoint, read_checkpoint, safetensors_header
from training.safe_files import UnreadableFile, read_bounded, within
from training.validate import validate_job

LINE = json.dumps({"trace_id": "a", "prompt": "p", "final_answer": "f"})


def _dataset(folder: Path, manifest: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(manifest or {"splits": {"train": "t.jsonl", "eval": "e.jsonl"}}))
    for name in ("t.jsonl", "e.jsonl"):
        (folder / name).write_text(LINE + "\n")
    return folder


def _finishes(call, *args):
    """call(*args) in a thread, waited for with a deadline: a read that blocks on a FIFO fails
    the test instead of hanging it. Returns what it raised (or None)."""
    outcome = {}

    def run():
        try:
            call(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["raised"] = exc
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), f"{call.__name__} blocked"
    return outcome.get("raised")


# ----------------------------------------------------------------------------- datasets

def test_the_specs_dataset_key_pattern_is_the_pipelines():
    assert DATASET_KEY_PATTERN == DATASET_KEY.pattern


@pytest.mark.parametrize("key", ["../../../../tmp/x", "/etc/hostname", "..", ".hidden", "a/b", "x\0y", "a" * 201])
def test_a_dataset_key_that_is_not_one_folder_name_is_refused_by_the_spec(key):
    with pytest.raises(ValidationError) as refused:
        JobSpec.model_validate(example_spec(dataset_key=key))
    assert {e["loc"][0] for e in refused.value.errors()} == {"dataset_key"}


@pytest.mark.parametrize("key", ["../outside-v1", "/abs-v1", "linked-v1"])
def test_a_dataset_outside_the_folder_is_unknown_in_the_same_words_as_a_missing_one(tmp_path, key):
    root = tmp_path / "datasets"
    root.mkdir()
    outside = _dataset(tmp_path / "outside-v1")
    os.symlink(outside, root / "linked-v1")  # a link out of the datasets folder
    key = str(outside) if key == "/abs-v1" else key
    with pytest.raises(UnknownDataset) as outside_refused:
        load_dataset(key, root)  # as a trial does, whatever the event said
    with pytest.raises(UnknownDataset) as missing_refused:
        load_dataset("missing-v1", root)
    assert str(outside_refused.value).replace(key, "K") == str(missing_refused.value).replace("missing-v1", "K")
    assert not dataset_exists(key, root)
    problems = dict(validate_job(key, "tiny-gemma3", "score", {}, Folders(datasets=root)))
    assert problems["dataset_key"].startswith(f"unknown dataset {key!r}")


def test_a_manifest_cannot_name_a_file_outside_its_dataset(tmp_path):
    root = tmp_path / "datasets"
    secret = tmp_path / "secret.jsonl"
    secret.write_text(LINE + "\n")
    _dataset(root / "evil-v1", {"splits": {"train": "../../secret.jsonl", "eval": str(secret)}})
    with pytest.raises(MalformedDataset) as refused:
        load_dataset("evil-v1", root)
    assert "must name a file inside the dataset's folder" in str(refused.value)
    assert str(tmp_path) not in str(refused.value)  # named inside the datasets folder


def test_a_file_in_a_dataset_that_links_out_of_the_datasets_folder_is_refused(tmp_path):
    root = tmp_path / "datasets"
    folder = _dataset(root / "linky-v1")
    (folder / "t.jsonl").unlink()
    os.symlink("/etc/hostname", folder / "t.jsonl")
    with pytest.raises(MalformedDataset, match="must name a file inside"):
        load_dataset("linky-v1", root)


def test_a_dataset_file_that_is_a_fifo_a_device_or_too_large_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    raised = _finishes(read_examples, fifo)
    assert isinstance(raised, MalformedDataset) and raised.problem == "not a regular file"
    zero = tmp_path / "zero.jsonl"
    os.symlink("/dev/zero", zero)
    assert _finishes(read_examples, zero).problem == "not a regular file"
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as f:
        f.truncate(2**20 + 1)  # sparse: costs nothing on disk
    raised = _finishes(read_examples, big, 2**20)
    assert "more than the 1 MiB read from such a file" in raised.problem


def test_a_malformed_line_is_named_by_the_key_and_file_not_the_servers_path(tmp_path):
    root = tmp_path / "datasets"
    folder = _dataset(root / "bad-v1")
    (folder / "t.jsonl").write_text(f"{LINE}\n{{oops\n")
    with pytest.raises(MalformedDataset) as refused:
        load_dataset("bad-v1", root)
    assert str(refused.value).startswith("bad-v1/t.jsonl:2: not valid JSON")


# ----------------------------------------------------------------------------- models

@pytest.mark.parametrize("exists", [True, False])
def test_a_model_path_outside_the_roots_is_refused_alike_whether_it_exists_or_not(tmp_path, exists):
    models, cache = tmp_path / "models", tmp_path / "hub"
    models.mkdir()
    outside = tmp_path / "elsewhere" / "qwen"
    if exists:
        write_tiny_checkpoint(outside, "qwen3")
    answers = []
    for model_id in (str(outside), "../elsewhere/qwen", f"{models}/../elsewhere/qwen"):
        with pytest.raises(ModelNotAvailable) as refused:
            resolve_model(model_id, models, cache)
        answers.append(str(refused.value).replace(model_id, "ID"))
    assert len(set(answers)) == 1 and "qwen3" not in answers[0]
    problems = dict(validate_job("ungar_hcd-v1", str(outside), "score", {}, Folders(models=models, hf_cache=cache)))
    assert problems["base_model_id"].replace(str(outside), "ID") == answers[0]


def test_an_existing_and_a_missing_outside_path_get_the_same_answer(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    rule = lambda path: dict(validate_job("ungar_hcd-v1", path, "score", {}, Folders(models=models)))  # noqa: E731
    existing, missing = rule("/etc"), rule("/no/such/folder")
    assert existing["base_model_id"].replace("/etc", "P") == missing["base_model_id"].replace("/no/such/folder", "P")


def test_a_model_folder_is_accepted_inside_the_models_folder_and_by_absolute_path_in_the_cache(tmp_path):
    models, cache = tmp_path / "models", tmp_path / "hub"
    inside = write_tiny_checkpoint(models / "org" / "tiny", "qwen3")
    assert resolve_model("org/tiny", models, cache).folder == inside.resolve()
    assert resolve_model(str(inside), models, cache).folder == inside.resolve()
    snapshot = write_tiny_checkpoint(cache / "models--org--x" / "snapshots" / "abc", "qwen3")
    assert resolve_model(str(snapshot), models, cache).folder == snapshot.resolve()
    with pytest.raises(ModelNotAvailable):
        resolve_model("models--org--x/snapshots/abc", models, cache)  # a relative id names the models folder only


def test_a_link_out_of_the_models_folder_is_neither_resolved_nor_listed(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    os.symlink(write_tiny_checkpoint(tmp_path / "elsewhere", "qwen3"), models / "linked")
    with pytest.raises(ModelNotAvailable):
        resolve_model("linked", models)
    assert [m.source.model_id for m in available_models(models, None, 8, 32) if m.source.kind == "folder"] == []


@pytest.mark.parametrize("special", ["fifo", "dev-zero", "sparse"])
def test_a_config_json_that_is_not_a_small_regular_file_is_refused_without_reading_it(tmp_path, special):
    folder = write_tiny_checkpoint(tmp_path / "models" / "m", "qwen3")
    config = folder / "config.json"
    config.unlink()
    if special == "fifo":
        os.mkfifo(config)
    elif special == "dev-zero":
        os.symlink("/dev/zero", config)
    else:
        with open(config, "wb") as f:
            f.truncate(2**30)  # 1 GiB, sparse
    raised = _finishes(read_checkpoint, folder)
    assert isinstance(raised, BrokenCheckpoint) and raised.path == config
    assert raised.problem == ("1,073,741,824 bytes, more than the 4 MiB read from such a file" if special == "sparse"
                              else "not a regular file")
    listed = _finishes(available_models, tmp_path / "models", None, 8, 32)
    assert listed is None  # the listing answers too, naming the problem per model


def test_a_stray_fifo_in_a_model_folder_refuses_it(tmp_path):
    folder = write_tiny_checkpoint(tmp_path / "m", "qwen3")
    os.mkfifo(folder / "special_tokens_map.json")  # the tokenizer loader would open it
    raised = _finishes(read_checkpoint, folder)
    assert isinstance(raised, BrokenCheckpoint) and raised.problem == "not a regular file"


def test_a_safetensors_header_length_is_bounded_before_anything_is_read(tmp_path):
    path = tmp_path / "model.safetensors"
    with open(path, "wb") as f:
        f.write((2**40).to_bytes(8, "little"))
        f.truncate(2**31)  # sparse: a file that claims a 1 TiB header, 2 GiB long
    with pytest.raises(BrokenCheckpoint, match="bad header length"):
        safetensors_header(path)


def test_an_index_cannot_name_a_shard_outside_its_folder(tmp_path):
    folder = write_tiny_checkpoint(tmp_path / "m", "qwen3")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "../../../etc/hostname"}}))
    with pytest.raises(BrokenCheckpoint, match="not a file in the checkpoint folder"):
        read_checkpoint(folder)


# ----------------------------------------------------------------------------- the helpers

def test_within_decides_outside_paths_from_the_string_and_resolves_inside_ones(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    os.symlink(tmp_path, root / "up")
    assert within("a", root) == (root / "a").resolve()
    assert within(root / "a" / ".." / "a", root) == (root / "a").resolve()
    assert [within(p, root) for p in ("..", "/etc", "a/../..", "up", "up/elsewhere")] == [None] * 5
    assert within("up/root/a", root) == (root / "a").resolve()  # a link that leads back inside
    assert within("missing/file", root) == (root / "missing" / "file").resolve()  # inside: may not exist yet


def test_read_bounded_refuses_a_file_over_its_bound(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 11)
    assert read_bounded(path, 11) == b"x" * 11
    with pytest.raises(UnreadableFile, match="11 bytes, more than the 10 bytes"):
        read_bounded(path, 10)


# ----------------------------------------------------------------------------- links out of an accepted folder

def test_a_dataset_manifest_that_links_out_of_the_datasets_folder_is_unknown_and_never_read(tmp_path):
    root = tmp_path / "datasets"
    outside = _dataset(tmp_path / "outside", {"splits": {"train": "/etc/hostname", "eval": "e.jsonl"}})
    folder = root / "linky-v1"
    folder.mkdir(parents=True)
    os.symlink(outside / "manifest.json", folder / "manifest.json")
    with pytest.raises(UnknownDataset) as refused:
        load_dataset("linky-v1", root)
    assert "/etc/hostname" not in str(refused.value) and not dataset_exists("linky-v1", root)
    folders = Folders(datasets=root, models=tmp_path / "models")
    assert [f for f, _ in validate_job("linky-v1", "tiny-gemma3", "score", {}, folders)] == ["dataset_key"]


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json", "model.safetensors"])
def test_a_model_file_that_links_out_of_the_models_folder_is_refused_unread(tmp_path, name):
    outside = write_tiny_checkpoint(tmp_path / "outside", "qwen3")
    folder = write_tiny_checkpoint(tmp_path / "models" / "m", "qwen3")
    (folder / name).unlink()
    os.symlink(outside / name, folder / name)
    raised = _finishes(read_checkpoint, folder)
    assert isinstance(raised, BrokenCheckpoint) and raised.path == folder / name
    assert "a link out of the model's folder" in raised.problem and str(outside) not in str(raised)


def test_an_index_shard_in_a_subfolder_that_links_out_is_refused(tmp_path):
    outside = write_tiny_checkpoint(tmp_path / "outside", "qwen3")
    folder = write_tiny_checkpoint(tmp_path / "models" / "m", "qwen3")
    (folder / "model.safetensors").unlink()
    os.symlink(outside, folder / "sub")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "sub/model.safetensors"}}))
    raised = _finishes(read_checkpoint, folder)
    assert isinstance(raised, BrokenCheckpoint) and "a link out" in raised.problem


def test_a_cache_snapshot_may_link_into_its_blobs(tmp_path):
    cache = tmp_path / "hub"
    snapshot = write_tiny_checkpoint(cache / "models--org--x" / "snapshots" / "abc", "qwen3")
    blobs = cache / "models--org--x" / "blobs"
    blobs.mkdir()
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).rename(blobs / name)
        os.symlink(Path("../../blobs") / name, snapshot / name)
    assert read_checkpoint(snapshot.resolve()).family == "qwen3"
