"""The function each Ray Tune trial runs: the run pipeline, reporting through Ray.

Every intermediate report (step, train_loss, eval_loss) becomes a Ray result with the
training checkpoint of that step, so schedulers see the trial progress, PBT can copy a
trial's state into another, and a restored experiment continues an interrupted trial from
its last checkpoint. The last result carries the evaluation metrics and the run's lineage.
The run folder and the training state sit in the job's folder (schemas/artifact_layout.py),
not in Ray's per-trial working directory, which Ray keeps in its temp folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import ray
from ray import tune

from schemas.artifact_layout import trial_run_folder, trial_train_state
from training.artifacts import read_manifest
from training.catalog import EVALUATION_METRICS
from training.folders import Folders
from training.run import run_pipeline
from training.warm import process_worker


def _fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def train_trial(
    config: dict, job_folder: str, dataset_key: str, model_id: str, metric_name: str, scheduler: str,
    folders: Folders, gpus: float = 0,
) -> None:
    context = tune.get_context()
    trial_id = context.get_trial_id()
    node = ray.get_runtime_context().get_node_id()  # which Ray node ran each report
    run_id = f"{context.get_experiment_name()}-{trial_id}"
    run_folder = trial_run_folder(job_folder, trial_id)
    if (run_folder / "manifest.json").exists():
        # Finished before the tuner was killed, after Ray last saved the experiment: the run
        # folder has the result; report it rather than train again.
        _report_final(read_manifest(run_folder), run_folder, node)
        return
    # The trainer's own checkpoints (one step folder at a time); filled from Ray's checkpoint
    # when the trial restarts (restored experiment, PBT exploit), else empty.
    train_state = _fresh_dir(trial_train_state(job_folder, trial_id))
    if (restored := tune.get_checkpoint()) is not None:
        with restored.as_directory() as saved:
            shutil.copytree(saved, train_state, dirs_exist_ok=True)
    staging = train_state.with_name(f"{trial_id}.staging")

    def report(record: dict) -> None:
        metrics = {**{k: v for k, v in record.items() if v is not None}, "node_id": node}
        step_dir = train_state / str(record["step"])
        if not step_dir.is_dir():
            tune.report(metrics)
            return
        # Ray copies the checkpoint folder now; the trainer replaces its step folder later.
        shutil.copytree(step_dir, _fresh_dir(staging) / step_dir.name)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(staging))

    result = run_pipeline(
        dataset_key, model_id, config, folders=folders, run_dir=run_folder, report=report, run_id=run_id,
        checkpoint_dir=train_state, gpus=gpus,
        # Ray Tune hands this process the next trial that needs the same resources (reuse_actors):
        # its warm worker keeps the base model, adapters and compiled programs for it.
        worker=process_worker(),
        # A FIFO scheduler never looks at intermediate results; the others rank trials by them.
        intermediate_scores=metric_name in EVALUATION_METRICS and scheduler != "fifo",
    )
    # Training is over: Ray keeps the checkpoints it needs, the run folder holds the model.
    shutil.rmtree(train_state, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    _report_final(read_manifest(result.run_dir), result.run_dir, node)


def _report_final(manifest: dict, run_dir: Path, node: str) -> None:
    """The trial's last result: its evaluation, the run's lineage, its compile time and which of
    its worker's trials it was (after the first, the worker was warm)."""
    tune.report({**manifest["metrics"], "run_id": manifest["run_id"], "run_dir": str(run_dir),
                 "compile_s": manifest["timings"]["compile_s"], "worker_trial": manifest.get("worker_trial", 1),
                 "node_id": node})
