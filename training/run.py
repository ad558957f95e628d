"""One run: dataset -> model -> Tunix SFT training -> evaluation -> artifacts.

`run_pipeline` is what a tuning trial, the CLI (`tunix-tune run`) and the tests call.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from training.artifacts import RunFolder, git_commit, package_versions
from training.base_model import BaseModel, load_base, lora_modules
from training.catalog import ModelSource, resolve_in
from training.datasets import load_dataset
from training.folders import Folders
from training.hyperparams import PRETRAINED_LORA_RANK, Hyperparameters
from training.traces import Dataset
from training.warm import WarmWorker

if TYPE_CHECKING:
    from training.train import TrainResult

Report = Callable[[dict], None]


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    metrics: dict[str, float]
    timings: dict[str, float]


def run_hyperparameters(source: ModelSource, values: dict | None) -> Hyperparameters:
    """A run's hyperparameters: a pretrained checkpoint is tuned with LoRA unless the run asks
    otherwise (lora_rank 0: full fine-tuning)."""
    defaults = {} if source.kind == "built-in" else {"lora_rank": PRETRAINED_LORA_RANK}
    return Hyperparameters.from_mapping({**defaults, **(values or {})})


def run_pipeline(
    dataset_key: str,
    model_id: str,
    hyperparameters: dict | None = None,
    *,
    folders: Folders,
    run_dir: Path,
    report: Report | None = None,
    run_id: str | None = None,
    checkpoint_dir: Path | None = None,
    intermediate_scores: bool = False,
    gpus: float = 0,
    worker: WarmWorker | None = None,
) -> RunResult:
    """Train and evaluate; every intermediate report goes to `report` and metrics.jsonl.

    run_dir: the run's folder (artifacts); run_id defaults to its name.

    checkpoint_dir: where training saves its state every eval_every steps, and resumes from
    when it already holds a checkpoint. intermediate_scores: every intermediate report also
    carries the evaluation metrics (score, answer_correctness) of the model at that step, for
    schedulers that rank trials by them mid-run; it costs one evaluation per report.
    gpus: the GPU share this run holds (Ray sets CUDA_VISIBLE_DEVICES to its devices); 0 runs on
    CPU. A fraction caps JAX's preallocation at that share of the device's memory.
    worker: a warm worker (training/warm.py) keeps the loaded base model, adapters and compiled
    programs for the next run of this process; the run's results are the same without it.
    """
    started = time.perf_counter()
    source = resolve_in(model_id, folders)
    hp = run_hyperparameters(source, hyperparameters)
    dataset = load_dataset(dataset_key, folders.datasets)
    run_id = run_id or run_dir.name
    folder = RunFolder(run_dir)

    # JAX and Tunix load here, not at import: validation and the CLI's help stay fast.
    from training.evaluate import evaluate
    from training.hf_export import export_lora
    from training.jax_setup import CompileTimer, configure_jax, use_accelerator
    from training.train import train

    use_accelerator(gpus)
    configure_jax(folders.jax_cache)
    base = load_base(source, hp.seed) if worker is None else worker.base(source, hp.seed, lambda: load_base(source, hp.seed))
    model, tokenizer = base.model, base.tokenizer

    def forward(record: dict) -> None:
        folder.log_metrics(record)
        if report is not None:
            report(record)

    exports: dict = {}  # a LoRA run on a checkpoint: adapter/ and merged/ in Hugging Face form

    def export(lora_model) -> None:
        if base.lineage["source"] != "built-in":
            exports.update(export_lora(lora_model, base.family, Path(base.lineage["folder"]), base.lineage,
                                       hp.lora_rank, hp.lora_alpha, hp.lora_targets, folder.path))

    try:
        with CompileTimer() as compile_timer:
            scorer = ((lambda m: evaluate(m, tokenizer, dataset.eval, worker)[0])
                      if intermediate_scores and dataset.eval else None)
            trained = train(model, tokenizer, dataset, hp, forward, folder.path, checkpoint_dir, scorer,
                            lora_modules(base.family, hp.lora_targets), before_merge=export, worker=worker)
        return conclude_run(folder, run_id, base, dataset, hp, trained, compile_s=compile_timer.seconds,
                            exports=exports, started=started, worker=worker)
    finally:
        folder.close()


def conclude_run(folder: RunFolder, run_id: str, base: BaseModel, dataset: Dataset, hp: Hyperparameters,
                 trained: TrainResult, *, compile_s: float, exports: dict, started: float,
                 worker: WarmWorker | None, extra: dict | None = None) -> RunResult:
    """The end of a run whose weights are in base.model (adapters merged): the held-out evaluation,
    the checkpoint, predictions and the manifest with the run's lineage. A packed trial ends here
    too (training/pack_run.py); `extra` joins its manifest."""
    from training import checkpoint
    from training.evaluate import evaluate
    from training.jax_setup import device_peak_mb

    eval_started = time.perf_counter()
    scores, predictions = evaluate(base.model, base.tokenizer, dataset.eval, worker)
    eval_s = time.perf_counter() - eval_started
    checkpoint.save(base.model, folder.checkpoint)
    metrics = {**scores, "eval_loss": trained.eval_loss, "train_loss": trained.train_loss}
    folder.log_metrics({"step": trained.steps, "final": True, **metrics})
    folder.write_predictions(predictions)
    timings = {
        "compile_s": compile_s,  # XLA compile, or load from the persistent cache
        "first_step_s": trained.first_step_s,  # the first step: trace, lower, compile, run
        "train_s": trained.train_s,
        "eval_s": eval_s,
        "total_s": time.perf_counter() - started,
        "steps_per_s": trained.steps_per_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_device_mb": device_peak_mb(),  # the GPU's peak use by this process; None on CPU
    }
    folder.write_manifest({
        "run_id": run_id,
        "dataset": {"key": dataset.key, "content_hash": dataset.content_hash,
                    "train_size": len(dataset.train), "eval_size": len(dataset.eval)},
        "model": base.lineage,
        "hyperparameters": hp.as_dict(),
        "seed": hp.seed,
        "steps": trained.steps,
        "resumed_at_step": trained.resumed_at,
        "metrics": metrics,
        "timings": timings,
        "packages": package_versions(),
        "git_commit": git_commit(),
        "checkpoint": str(folder.checkpoint),
        "exports": exports,
        # Which of its worker's trials this was: after the first, the worker was warm.
        "worker_trial": worker.trials if worker is not None else 1,
        **(extra or {}),
    })
    return RunResult(run_id=run_id, run_dir=folder.path, metrics=metrics, timings=timings)
