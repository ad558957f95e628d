"""A real (short) Tunix training run on JAX, its evaluation and its artifacts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from training.evaluate import answer_correctness, evaluate
from training.folders import Folders
from training.run import run_pipeline
from training.tokenizer import CharTokenizer

FOLDERS = Folders()
SHORT = {"max_steps": 120, "eval_every": 40, "batch_size": 32, "learning_rate": 3e-3, "seed": 7}


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    reports = []
    result = run_pipeline("ungar_hcd-v1", "tiny-gemma3", SHORT, folders=FOLDERS,
                          run_dir=tmp_path_factory.mktemp("run"), report=reports.append)
    return result, reports


def test_loss_falls_and_every_interval_is_reported(short_run):
    result, reports = short_run
    assert [r["step"] for r in reports] == [40, 80, 120]
    assert reports[-1]["train_loss"] < reports[0]["train_loss"] * 0.8
    assert reports[-1]["eval_loss"] < reports[0]["eval_loss"]
    assert result.metrics["train_loss"] == pytest.approx(reports[-1]["train_loss"])
    assert 0 <= result.metrics["score"] <= 100
    assert result.metrics["score"] == pytest.approx(100 * result.metrics["answer_correctness"])


def test_manifest_carries_the_lineage(short_run):
    result, _ = short_run
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["run_id"] == result.run_id
    assert manifest["dataset"]["key"] == "ungar_hcd-v1"
    assert manifest["dataset"]["content_hash"].startswith("sha256:")
    assert manifest["model"]["id"] == "tiny-gemma3"
    assert manifest["hyperparameters"]["learning_rate"] == 3e-3 and manifest["seed"] == 7
    assert manifest["packages"]["google-tunix"] == "0.1.7" and manifest["packages"]["jax"] == "0.10.2"
    assert manifest["metrics"] == result.metrics
    lines = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [40, 80, 120, 120] and lines[-1]["final"] is True


def test_checkpoint_reproduces_the_saved_predictions(short_run):
    from training import checkpoint
    from training.datasets import load_dataset

    result, _ = short_run
    saved = [json.loads(x) for x in (result.run_dir / "predictions.jsonl").read_text().splitlines()]
    tokenizer = CharTokenizer()
    model = checkpoint.load("tiny-gemma3", tokenizer.vocab_size, result.run_dir / "checkpoint")
    scores, predictions = evaluate(model, tokenizer, load_dataset("ungar_hcd-v1", FOLDERS.datasets).eval)
    assert predictions == saved
    assert scores["answer_correctness"] == result.metrics["answer_correctness"]


class _Interrupted(Exception):
    pass


def test_a_run_interrupted_after_a_checkpoint_resumes_to_the_same_result(short_run, tmp_path):
    """Killed after its step-80 report, the run continues from the step-80 checkpoint and ends
    where the uninterrupted run (short_run) ended; intermediate scores come with each report."""
    uninterrupted, _ = short_run
    checkpoints, first_reports = tmp_path / "train_state", []

    def stop_at_80(record):
        first_reports.append(record)
        if record["step"] == 80:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        run_pipeline("ungar_hcd-v1", "tiny-gemma3", SHORT, folders=FOLDERS, run_dir=tmp_path / "run", report=stop_at_80,
                     checkpoint_dir=checkpoints, intermediate_scores=True)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["80"]
    assert [r["step"] for r in first_reports] == [40, 80]
    assert all(0 <= r["score"] <= 100 and "answer_correctness" in r for r in first_reports)

    second_reports = []
    resumed = run_pipeline("ungar_hcd-v1", "tiny-gemma3", SHORT, folders=FOLDERS, run_dir=tmp_path / "run",
                           report=second_reports.append, checkpoint_dir=checkpoints, intermediate_scores=True)
    assert [r["step"] for r in second_reports] == [120]
    manifest = json.loads((resumed.run_dir / "manifest.json").read_text())
    assert manifest["resumed_at_step"] == 80
    assert resumed.metrics["eval_loss"] == pytest.approx(uninterrupted.metrics["eval_loss"], rel=1e-4)
    assert resumed.metrics["score"] == pytest.approx(uninterrupted.metrics["score"], abs=0.5)


def test_the_trainer_saves_a_checkpoint_at_its_reports_and_nowhere_else(tmp_path):
    """Orbax's default policy would also save step 1: a checkpoint no report hands on."""
    import orbax.checkpoint as ocp

    from training.train import _checkpointing

    options = _checkpointing(tmp_path, 40)["checkpointing_options"]
    with ocp.CheckpointManager(tmp_path, options=options) as manager:
        assert [step for step in range(1, 121) if manager.should_save(step)] == [40, 80, 120]


def test_answer_correctness_is_exact_match_after_strip_and_lower():
    assert answer_correctness([" P1", "p2 ", "tie", "P1"], ["P1", "P2", "Tie", "P2"]) == 0.75
    assert answer_correctness(["P1."], ["P1"]) == 0.0
    assert answer_correctness([], []) == 0.0
    with pytest.raises(ValueError):
        answer_correctness(["P1"], [])


def test_cli_json_prints_one_object_and_nothing_else(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "run", "--dataset", "ungar_hcd-v1", "--model", "tiny-gemma3",
         "--set", "max_steps=10", "--set", "eval_every=5", "--json", "--run-dir", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = done.stdout.splitlines()
    out = json.loads(line)
    assert set(out) == {"run_id", "run_dir", "metrics", "timings"}
    assert out["run_dir"] == str(tmp_path / "r") and (tmp_path / "r" / "manifest.json").is_file()


def test_cli_refuses_an_unknown_hyperparameter():
    done = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "run", "--dataset", "ungar_hcd-v1", "--model", "tiny-gemma3",
         "--set", "learnig_rate=0.1"], capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2 and "unknown hyperparameter(s) learnig_rate" in done.stderr
