"""A LoRA job on a real pretrained LLM through the real stack: SmolLM2-135M-Instruct's GGUF in a
fixture Ollama store (the wheel's file hard-linked as its blob), named ollama:smollm2:135m,
converted once into the stack's conversion cache, its untuned answers scored as the job's
baseline, tuned to JobCompleted, and its best trial measurably better than the baseline on the
held-out split of names_chat-v1 (SmolLM2 finds the name but answers in a sentence; the LoRA
learns to answer with the name alone)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_real_models_e2e import _manifests, _run
from tests.support.gguf_fixtures import sha256_of, smollm2_gguf, write_ollama_store
from tests.support.specs import example_spec


def test_a_lora_job_on_an_ollama_model_beats_its_untuned_baseline_and_records_its_gguf(tuning_stack):
    write_ollama_store(tuning_stack["ollama"], smollm2_gguf())
    job = _run(tuning_stack, example_spec(
        name="ollama-smollm2", dataset_key="names_chat-v1", base_model_id="ollama:smollm2:135m", num_samples=1,
        metric_name="exact_match", metric_mode="max",
        fixed_params={"max_steps": 16, "eval_every": 8, "max_seq_length": 64, "batch_size": 4, "warmup_steps": 2,
                      "lora_rank": 8},
        search_space={"learning_rate": {"type": "choice", "values": [3e-4]}}))
    (manifest,) = _manifests(job)
    gguf = manifest["model"]["gguf"]
    assert (manifest["model"]["source"], gguf["sha256"], gguf["quantization"]) == (
        "ollama", sha256_of(smollm2_gguf()), "Q4_1")
    assert gguf["cache_entry"] == str(tuning_stack["folder"] / "converted-models" / gguf["sha256"])

    baseline, best = job["baseline"], job["best_trial"]
    assert baseline["error"] is None and baseline["eval_size"] == 30, baseline
    assert baseline["metric"] < best["metrics"]["exact_match"], (baseline, best["metrics"])
    assert best["gain"] == best["metrics"]["exact_match"] - baseline["metric"] > 0
    # The baseline's answers are on disk beside the trials': the same questions, untuned.
    untuned = [json.loads(line) for line in (Path(baseline["path"]) / "predictions.jsonl").read_text().splitlines()]
    tuned = [json.loads(line) for line in (Path(best["artifact_path"]) / "predictions.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in untuned] == [r["prompt"] for r in tuned]
    assert sum(r["exact_match"] for r in untuned) / len(untuned) == baseline["metric"]
