"""A malformed dataset read inside a real Ray task, and inside a real Ray Tune trial, reaches the
driver as what it is: MalformedDataset with its file and line (not a TypeError from an exception
Ray could not rebuild), and the trial's public error is that cause in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray
from ray import tune

from producers.error_text import one_line
from training.dataset_files import MalformedDataset
from training.datasets import load_dataset

GOOD = json.dumps({"trace_id": "a", "prompt": "p", "final_answer": "f"})
WANTED = "MalformedDataset: bad-v1/train.jsonl:3: not valid JSON: Expecting property name enclosed in double quotes"


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def datasets(tmp_path) -> Path:
    folder = tmp_path / "datasets" / "bad-v1"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"splits": {"train": "train.jsonl", "eval": "eval.jsonl"}}))
    (folder / "train.jsonl").write_text(f"{GOOD}\n{GOOD}\n{{not json\n")
    (folder / "eval.jsonl").write_text(f"{GOOD}\n")
    return tmp_path / "datasets"


def test_a_malformed_dataset_raised_in_a_ray_task_keeps_its_file_and_line(local_ray, datasets):
    task = ray.remote(load_dataset).remote("bad-v1", datasets)
    with pytest.raises(MalformedDataset) as raised:  # Ray raises it as an instance of the cause's class
        ray.get(task)
    cause = raised.value.cause
    assert type(cause) is MalformedDataset and (cause.path, cause.line) == (Path("bad-v1/train.jsonl"), 3)
    assert one_line(raised.value) == WANTED


def test_a_ray_tune_trial_that_reads_it_fails_with_that_cause_in_one_line(local_ray, datasets, tmp_path):
    def trial(config):
        load_dataset("bad-v1", Path(config["datasets"]))

    tuner = tune.Tuner(trial, param_space={"datasets": str(datasets)},
                       run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), name="bad", verbose=0))
    (result,) = tuner.fit()
    assert result.error is not None
    assert one_line(result.error) == WANTED
