"""A saved run folder, copied elsewhere (as promotion copies it into the registry), evaluated again
gives the score its manifest recorded; through training.reevaluate and `tunix-tune run --eval-only`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from training.folders import Folders
from training.reevaluate import SavedRunError, evaluate_saved
from training.run import run_pipeline

FOLDERS = Folders()
TINY = {"max_steps": 10, "eval_every": 5}  # the cheapest run tests/e2e/test_run_pipeline.py makes


@pytest.fixture(scope="module")
def promoted(tmp_path_factory):
    """A tiny built-in run's folder copied to models/NAME/VERSION, the original deleted: nothing may
    be read through the absolute paths its manifest holds."""
    run_dir = tmp_path_factory.mktemp("run") / "run-1"
    result = run_pipeline("ungar_hcd-v1", "tiny-gemma3", TINY, folders=FOLDERS, run_dir=run_dir)
    copy = tmp_path_factory.mktemp("registry") / "models" / "tiny" / "1"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(run_dir)
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["metrics"] == result.metrics
    return copy, manifest


def test_the_copied_run_folder_gives_its_recorded_score(promoted):
    folder, manifest = promoted
    result = evaluate_saved(folder, FOLDERS)
    assert result["score"] == pytest.approx(manifest["metrics"]["score"], abs=1e-6)
    assert result["answer_correctness"] == pytest.approx(manifest["metrics"]["answer_correctness"], abs=1e-8)
    assert result["matches_recorded"] is True and result["recorded_score"] == manifest["metrics"]["score"]
    assert result["predictions_changed"] == 0  # every prediction as the run recorded it, not only the score
    assert result["dataset_changed"] is False and result["content_hash"] == manifest["dataset"]["content_hash"]
    assert result["weights"] == "checkpoint" and result["weights_path"] == str(folder / "checkpoint")
    assert result["eval_size"] == manifest["dataset"]["eval_size"]


def test_a_changed_dataset_is_reported_not_refused(promoted, tmp_path):
    folder, manifest = promoted
    edited = tmp_path / "edited"
    shutil.copytree(folder, edited)
    changed = {**manifest, "dataset": {**manifest["dataset"], "content_hash": "sha256:" + "0" * 64}}
    (edited / "manifest.json").write_text(json.dumps(changed))
    result = evaluate_saved(edited, FOLDERS)
    assert result["dataset_changed"] is True and result["recorded_content_hash"] == "sha256:" + "0" * 64
    assert result["score"] == pytest.approx(manifest["metrics"]["score"], abs=1e-6)


def test_cli_eval_only_json_gives_the_recorded_score(promoted):
    folder, manifest = promoted
    done = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "run", "--eval-only", "--model", str(folder), "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = done.stdout.splitlines()
    out = json.loads(line)
    assert out["model"] == str(folder) and out["recorded"] == manifest["metrics"]
    assert out["metrics"]["score"] == pytest.approx(manifest["metrics"]["score"], abs=1e-6)
    assert out["compared"]["predictions_changed"] == 0 and out["compared"]["dataset_changed"] is False


def test_a_folder_without_manifest_is_one_clear_error(tmp_path):
    (tmp_path / "checkpoint").mkdir()
    with pytest.raises(SavedRunError, match="has no manifest.json"):
        evaluate_saved(tmp_path, FOLDERS)
    for folder in (tmp_path, tmp_path / "missing"):
        done = subprocess.run(
            [sys.executable, "-m", "app.cli.main", "run", "--eval-only", "--model", str(folder), "--json"],
            capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 2 and done.stdout == ""
        (line,) = done.stderr.splitlines()
        assert line.startswith("error: ") and str(folder) in line


def test_a_built_in_run_without_checkpoint_says_so(promoted, tmp_path):
    folder, _ = promoted
    shutil.copy(folder / "manifest.json", tmp_path / "manifest.json")
    with pytest.raises(SavedRunError, match="no checkpoint/"):
        evaluate_saved(tmp_path, FOLDERS)


def test_a_hugging_face_run_with_neither_merged_nor_checkpoint_says_so(promoted, tmp_path):
    _, manifest = promoted
    hf = {**manifest, "model": {"id": "Qwen/Qwen3-0.6B", "source": "hf-cache", "folder": "/nowhere"},
          "exports": {"adapter": "/nowhere/adapter", "merged": None, "merged_note": "this base checkpoint is sharded"}}
    (tmp_path / "manifest.json").write_text(json.dumps(hf))
    with pytest.raises(SavedRunError, match=r"no merged/ export .*sharded.* and no checkpoint/"):
        evaluate_saved(tmp_path, FOLDERS)


def test_a_lora_run_on_a_hugging_face_checkpoint_reloads_from_its_merged_folder(tmp_path):
    """merged/ of the copy is loaded as a local model folder; the base checkpoint is gone."""
    from tests.support.hf_fixtures import write_tiny_checkpoint

    base = write_tiny_checkpoint(tmp_path / "base", "gemma3")
    run = {"max_steps": 20, "eval_every": 10, "batch_size": 8, "learning_rate": 1e-2, "max_seq_length": 48}
    run_pipeline("ungar_hcd-v1", str(base), run, folders=Folders(models=tmp_path), run_dir=tmp_path / "run")
    copy = tmp_path / "models" / "tiny-hf" / "1"
    shutil.copytree(tmp_path / "run", copy)
    shutil.rmtree(tmp_path / "run")
    shutil.rmtree(base)
    recorded = json.loads((copy / "manifest.json").read_text())["metrics"]
    result = evaluate_saved(copy, FOLDERS)
    assert result["weights"] == "merged" and result["weights_path"] == str(copy / "merged")
    assert result["score"] == pytest.approx(recorded["score"], abs=1e-6) and result["predictions_changed"] == 0
