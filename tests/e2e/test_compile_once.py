"""A trial's train step compiles once. Without a mesh, tunix leaves the optimizer's state (and the
model's, which it holds) as created: a checkpoint's weights come back from the loader committed to
the device, LoRA adapters and optimizer moments uncommitted, and the first step hands everything
back committed, so step 2 compiled the program again (11 s a trial for SmolLM2 on these CPUs).
training/optimizer.Trainer commits the state before the first step."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.support.hf_fixtures import write_tiny_checkpoint
from training.base_model import load_base, lora_modules
from training.catalog import resolve_in
from training.datasets import load_dataset
from training.folders import Folders
from training.hyperparams import Hyperparameters
from training.train import train


@pytest.mark.parametrize(("model", "lora_rank"), [("tiny-gemma3", 0), ("tiny-gemma3", 4), ("llama3", 4), ("llama3", 0)])
def test_the_train_step_compiles_once_over_a_whole_run(model, lora_rank, tmp_path, caplog):
    import jax

    if model == "llama3":  # a Hugging Face checkpoint, loaded as SmolLM2's is
        model = str(write_tiny_checkpoint(tmp_path / "models" / "tiny-llama3", "llama3").name)
    folders = Folders(models=tmp_path / "models", jax_cache=tmp_path / "jax-cache")
    base = load_base(resolve_in(model, folders), seed=0)
    dataset = load_dataset("ungar_hcd-v1", folders.datasets)
    hp = Hyperparameters.from_mapping({"max_steps": 5, "eval_every": 1, "batch_size": 4, "lora_rank": lora_rank,
                                       "max_seq_length": 48})
    compiled: list[int] = []

    def train_step_compiles() -> int:
        return sum(r.getMessage().startswith("Compiling jit(_train_step)") for r in caplog.records)

    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        train(base.model, base.tokenizer, dataset, hp, lambda report: compiled.append(train_step_compiles()),
              tmp_path / "run", lora_modules=lora_modules(base.family, "all"))
    shardings = [r.getMessage().count("UnspecifiedValue") for r in caplog.records
                 if r.getMessage().startswith("Compiling jit(_train_step)")]
    assert compiled == [1] * len(compiled) and len(compiled) == 5, (compiled, shardings)
