"""`tunix-tune generate` end to end: the real SmolLM2 (its GGUF in a fixture Ollama store, converted once
per session) answers Paris through the project's own loader and chat template; a tiny run's folder and
its promoted copy answer what the run's evaluation predicted; SmolLM2 scored by exact_match and contains,
in batches."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.gguf_fixtures import smollm2_gguf, write_ollama_store
from training.folders import Folders
from training.traces import Trace

REPO = Path(__file__).resolve().parents[2]
QUESTION = "What is the capital of France?"


def _generate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli.main", "generate", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env={**os.environ, **env})


def _json(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = done.stdout.splitlines()  # --json: one object, nothing else on stdout
    return json.loads(line)


def test_smollm2_from_ollama_answers_paris_and_its_token_ids_round_trip(smollm2_converted, tmp_path):
    from training.tokenizer import HfTokenizer

    store = tmp_path / "ollama"
    write_ollama_store(store, smollm2_gguf())
    env = {"OLLAMA_MODELS": str(store), "TUNIX_MODELS_DIR": str(tmp_path / "models"),
           "TUNIX_CONVERTED_MODELS_DIR": str(smollm2_converted.folder.parent)}  # the session's conversion
    out = _json(_generate("--model", "ollama:smollm2:135m", "--json", QUESTION, env=env))
    assert "Paris" in out["text"] and out["model"] == "ollama:smollm2:135m"
    tokenizer = HfTokenizer(smollm2_converted.folder)
    rendered = tokenizer.render(Trace("q", QUESTION, ""))
    # the tokenizer's own ChatML template, with SmolLM2's default system turn; no BOS (the file names none)
    assert rendered.startswith("<|im_start|>system\n") and rendered.endswith(f"{QUESTION}<|im_end|>\n<|im_start|>assistant\n")
    assert out["prompt_token_ids"] == tokenizer.encode(rendered) and tokenizer.bos_id is None
    assert out["prompt_token_ids"].count(2) == 2  # <|im_end|>, the tokenizer's pad id, ends two turns: not masked
    assert out["token_ids"] and tokenizer.decode(out["token_ids"]) == out["text"]
    assert not set(out["token_ids"]) & set(tokenizer.eos_ids)  # the answer stops before its end token


def test_smollm2_is_scored_by_exact_match_and_contains_the_same_in_batches(smollm2_converted, monkeypatch):
    from training import sampling
    from training.evaluate import evaluate
    from training.generation import load_base_model

    folder = smollm2_converted.folder
    loaded = load_base_model(folder.name, Folders(models=folder.parent, converted=folder.parent))
    traces = [Trace("fr", QUESTION, "Paris"), Trace("fr-exact", QUESTION, "The capital of France is Paris."),
              Trace("de", "What is the capital of Germany?", "Madrid")]
    whole, rows = evaluate(loaded.model, loaded.tokenizer, traces)
    monkeypatch.setattr(sampling, "MAX_DECODE_BATCH", 2)  # two batches, the second topped up with a repeat
    batched, batched_rows = evaluate(loaded.model, loaded.tokenizer, traces)
    assert [r["prediction"] for r in batched_rows] == [r["prediction"] for r in rows]
    assert batched == whole
    assert [(r["exact_match"], r["contains"]) for r in rows] == [(False, True), (True, True), (False, False)]
    assert whole["exact_match"] == pytest.approx(1 / 3) and whole["contains"] == pytest.approx(2 / 3)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny built-in run (the cheapest tests/e2e/test_run_pipeline.py makes) and its registry copy."""
    from training.run import run_pipeline

    root = tmp_path_factory.mktemp("generate")
    run_dir = root / "elsewhere" / "run-1"  # outside the artifacts folder: the operator may name any run folder
    run_pipeline("ungar_hcd-v1", "tiny-gemma3", {"max_steps": 10, "eval_every": 5}, folders=Folders(), run_dir=run_dir)
    shutil.copytree(run_dir, root / "artifacts" / "models" / "tiny" / "3")
    first = json.loads((run_dir / "predictions.jsonl").read_text().splitlines()[0])
    return root, run_dir, first


def test_a_run_reports_exact_match_and_contains_over_its_predictions(tiny_run):
    _, run_dir, _ = tiny_run
    metrics = json.loads((run_dir / "manifest.json").read_text())["metrics"]
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 530  # the whole eval split, decoded in batches
    for name in ("exact_match", "contains"):
        assert metrics[name] == pytest.approx(sum(r[name] for r in rows) / len(rows))
    # short answers without punctuation: exact match after normalising is Tunix RT's strip + lower
    assert metrics["exact_match"] == pytest.approx(metrics["answer_correctness"])
    final = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["final"] and final["exact_match"] == metrics["exact_match"] and final["contains"] == metrics["contains"]


def test_a_run_folder_and_its_promoted_copy_answer_as_the_run_evaluated(tiny_run):
    root, run_dir, first = tiny_run
    env = {"TUNIX_ARTIFACTS_DIR": str(root / "artifacts")}
    # evaluate() decodes up to 8 tokens for these short answers: the same request answers the same
    ask = ("--max-tokens", "8", "--json", first["prompt"])
    by_folder = _json(_generate("--model", str(run_dir), *ask, env=env))
    assert by_folder["text"] == first["prediction"] and by_folder["model"].startswith(f"{run_dir} (checkpoint")
    by_name = _json(_generate("--model", "tiny", *ask, env=env))
    assert (by_name["text"], by_name["token_ids"]) == (by_folder["text"], by_folder["token_ids"])
    assert by_name["model"] == f"tiny ({root / 'artifacts' / 'models' / 'tiny' / '3'})"
    missing = _generate("--model", "tiny:4", "hi", env=env)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip() == "error: promoted model 'tiny' has no version 4; versions: 3"


def test_a_built_in_base_model_answers_with_sampling_reproducible_by_seed():
    sample = ("--model", "tiny-gemma3", "--temperature", "1.5", "--max-tokens", "12", "--json")
    first, again = (_json(_generate(*sample, "--seed", "7", "1+1", env={})) for _ in range(2))
    assert first["token_ids"] == again["token_ids"] and len(first["token_ids"]) >= 1
    assert first["prompt_token_ids"] == [1, 4, 75, 4, 83]  # <bos> "1+1="


def test_a_lora_run_on_a_hugging_face_checkpoint_answers_from_its_merged_folder(tmp_path):
    from tests.support.hf_fixtures import write_tiny_checkpoint
    from training.generation import generate_text, load_run_folder
    from training.run import run_pipeline

    base = write_tiny_checkpoint(tmp_path / "models" / "base", "qwen3")  # with a chat template
    folders = Folders(models=tmp_path / "models")
    run_dir = tmp_path / "run"
    run_pipeline("ungar_hcd-v1", str(base), {"max_steps": 4, "eval_every": 2, "batch_size": 4, "max_seq_length": 48},
                 folders=folders, run_dir=run_dir)
    first = json.loads((run_dir / "predictions.jsonl").read_text().splitlines()[0])
    loaded = load_run_folder(run_dir, folders)
    assert loaded.described == f"{run_dir} (merged, base {base})"
    completion = generate_text(loaded, first["prompt"], max_new_tokens=8)
    assert completion.text == first["prediction"]
    assert loaded.tokenizer.decode(completion.token_ids) == completion.text
