"""Jobs on Hugging Face checkpoints through the real stack (Kafka, PostgreSQL, the tuner, Ray
trials): a checkpoint folder, the seed's hub id found in the offline cache, a chat dataset.
Tiny fixtures in the exact hub layout stand in for the real weights (no hub here)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_tuning_e2e import _wait_for_job
from tests.support.hf_fixtures import write_cached_snapshot, write_tiny_checkpoint
from tests.support.specs import SEED_EXAMPLE, example_spec

SHORT = {"max_steps": 20, "eval_every": 10, "max_seq_length": 32}


def _run(stack: dict, spec: dict) -> dict:
    base = stack["url"]
    created = httpx.post(f"{base}/api/tuning/jobs", json=spec, timeout=30)
    assert created.status_code in (201, 202), created.text
    job_id = created.json()["job_id"]
    assert httpx.post(f"{base}/api/tuning/jobs/{job_id}/start", timeout=30).status_code == 202
    job = _wait_for_job(stack, job_id, 900)
    assert job["status"] == "completed", job.get("error") or [p.output()[-3000:] for p in stack["procs"]]
    return job


def _manifests(job: dict) -> list[dict]:
    return [json.loads((Path(t["artifact_path"]) / "manifest.json").read_text()) for t in job["trials"]]


def test_a_checkpoint_folder_is_tuned_with_lora_and_its_lineage_recorded(tuning_stack):
    folder = write_tiny_checkpoint(tuning_stack["folder"] / "models" / "tiny-qwen3", "qwen3")
    job = _run(tuning_stack, example_spec(
        name="folder", base_model_id=str(folder), num_samples=2, max_concurrent_trials=2,
        fixed_params={**SHORT, "batch_size": 8},
        search_space={"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}}))
    assert len(job["trials"]) == 2 and all(0 <= t["metrics"]["score"] <= 100 for t in job["trials"])
    for manifest in _manifests(job):
        model = manifest["model"]
        assert (model["source"], model["family"], model["folder"]) == ("folder", "qwen3", str(folder))
        assert model["files"]["model.safetensors"].startswith("sha256:")
        assert manifest["hyperparameters"]["lora_rank"] == 8  # LoRA by default on a pretrained checkpoint
    # The untuned checkpoint was scored once, on the same eval split, from the same files.
    baseline = job["baseline"]
    assert baseline["error"] is None and 0 <= baseline["metric"] <= 100, baseline
    scored = json.loads((Path(baseline["path"]) / "manifest.json").read_text())
    assert scored["model"]["files"] == manifest["model"]["files"] and scored["dataset"]["eval_size"] == baseline["eval_size"]
    assert all(t["gain"] == pytest.approx(t["metrics"]["score"] - baseline["metric"]) for t in job["trials"])


def test_the_seed_example_runs_from_the_offline_hugging_face_cache(tuning_stack):
    snapshot = write_cached_snapshot(tuning_stack["hf_cache"], "google/gemma-2b-it", "gemma", revision="f00dfeed")
    job = _run(tuning_stack, {**SEED_EXAMPLE, "num_samples": 1, "fixed_params": SHORT})
    (manifest,) = _manifests(job)
    assert manifest["model"]["source"] == "hf-cache" and manifest["model"]["revision"] == "f00dfeed"
    assert manifest["model"]["family"] == "gemma"  # the seed's model is a Gemma 1 checkpoint
    assert manifest["model"]["folder"] == str(snapshot)
    assert job["best_metric"] is not None


def test_a_chat_dataset_is_rendered_with_the_models_template_and_scored(tuning_stack):
    folder = write_tiny_checkpoint(tuning_stack["folder"] / "models" / "tiny-qwen2", "qwen2")
    job = _run(tuning_stack, example_spec(
        name="chat", dataset_key="capitals_chat-v1", base_model_id=str(folder), num_samples=1,
        fixed_params={**SHORT, "max_seq_length": 128, "batch_size": 8},
        search_space={"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}}))
    (trial,) = job["trials"]
    assert "eval_loss" in trial["metrics"] and 0 <= trial["metrics"]["answer_correctness"] <= 1
    predictions = (Path(trial["artifact_path"]) / "predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 10 and json.loads(predictions[0])["reference"] == "Paris"
