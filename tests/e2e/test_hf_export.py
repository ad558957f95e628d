"""A LoRA run on a Hugging Face checkpoint leaves the adapter and, where tunix can write it, the
merged model as a Hugging Face folder that reloads to the same predictions the run recorded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.support.hf_fixtures import write_tiny_checkpoint
from training.datasets import load_dataset
from training.evaluate import evaluate
from training.folders import Folders
from training.hf_models import load_hf_model
from training.run import run_pipeline
from training.tokenizer import HfTokenizer

RUN = {"max_steps": 20, "eval_every": 10, "batch_size": 8, "learning_rate": 1e-2, "max_seq_length": 48}


def _run(tmp_path: Path, family: str) -> tuple[Path, dict]:
    base = write_tiny_checkpoint(tmp_path / "base", family)
    # A model path must be under the models folder: here, the test's own folder.
    run_pipeline("ungar_hcd-v1", str(base), RUN, folders=Folders(models=tmp_path), run_dir=tmp_path / "run")
    return base, json.loads((tmp_path / "run" / "manifest.json").read_text())


@pytest.mark.parametrize("family", ["qwen3", "gemma3"])
def test_the_merged_folder_reloads_to_the_runs_predictions(tmp_path, family):
    base, manifest = _run(tmp_path, family)
    merged = Path(manifest["exports"]["merged"])
    before, after = load_file(str(base / "model.safetensors")), load_file(str(merged / "model.safetensors"))
    assert before.keys() == after.keys()
    changed = [k for k in before if not np.array_equal(before[k], after[k])]
    assert changed and all("layers." in k for k in changed)  # the LoRA deltas, in the decoder's maps
    model = load_hf_model(merged, json.loads((merged / "config.json").read_text()))
    _, predictions = evaluate(model, HfTokenizer(merged), load_dataset("ungar_hcd-v1", Path("datasets")).eval)
    recorded = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert [p["prediction"] for p in predictions] == [r["prediction"] for r in recorded]
    config = json.loads((Path(manifest["exports"]["adapter"]) / "adapter_config.json").read_text())
    assert (config["r"], config["base_model"]["folder"]) == (8, str(base))
    assert len(load_file(str(Path(manifest["exports"]["adapter"]) / "adapter_model.safetensors"))) == config["tensors"] > 0


def test_a_family_without_a_tunix_exporter_records_why(tmp_path):
    _, manifest = _run(tmp_path, "qwen2")
    assert manifest["exports"]["merged"] is None and "no merged-model exporter for qwen2" in manifest["exports"]["merged_note"]
    assert (Path(manifest["exports"]["adapter"]) / "adapter_model.safetensors").is_file()
