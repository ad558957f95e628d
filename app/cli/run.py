"""`tunix-tune run`: one training run plus evaluation, with a progress bar or one JSON object."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from adapters.settings import Settings
from training.hyperparams import Hyperparameters


def parse_sets(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"--set expects NAME=VALUE, got {pair!r}")
        values[name.strip()] = value.strip()
    return values


def run_command(dataset: str, model: str, sets: list[str], as_json: bool, run_dir: Path | None,
                settings: Settings) -> None:
    from training.catalog import ModelNotAvailable
    from training.dataset_files import MalformedDataset
    from training.datasets import UnknownDataset
    from training.hf_checkpoint import BrokenCheckpoint
    from training.hyperparams import UnknownHyperparameter
    from training.run import run_pipeline

    values = parse_sets(sets)
    try:
        hp = Hyperparameters.from_mapping(values)
    except (UnknownHyperparameter, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--set") from None
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]training"), BarColumn(), TextColumn("step {task.completed}/{task.total}"),
        TextColumn("{task.fields[losses]}"), TimeElapsedColumn(),
        console=console, disable=as_json or not console.is_terminal,
    )
    total = hp.max_steps  # None for epoch-based runs: the bar then counts without a total
    task = progress.add_task("train", total=total, losses="")

    def report(record: dict) -> None:
        losses = " ".join(f"{k}={v:.4f}" for k, v in record.items() if k.endswith("loss"))
        progress.update(task, completed=record["step"], losses=losses)
        if not as_json and not console.is_terminal:
            console.print(f"step {record['step']}: {losses}")

    try:
        with progress:
            run_dir = run_dir or settings.artifacts_dir / "runs" / f"run-{uuid.uuid4().hex[:12]}"
            result = run_pipeline(dataset, model, values, folders=settings.training_folders, run_dir=run_dir,
                                  report=report)
    except (UnknownDataset, MalformedDataset, ModelNotAvailable, BrokenCheckpoint, NotImplementedError) as exc:
        console.print(f"[red]error:[/red] {exc}")  # BrokenCheckpoint: a broken folder, or a GGUF file it cannot convert
        raise typer.Exit(2) from None
    if as_json:
        sys.stdout.write(json.dumps({
            "run_id": result.run_id, "run_dir": str(result.run_dir),
            "metrics": result.metrics, "timings": result.timings,
        }) + "\n")
        return
    typer.echo("metrics:  " + "  ".join(f"{k}={v:.4g}" for k, v in result.metrics.items()))
    typer.echo(f"timings:  compile {result.timings['compile_s']:.1f}s  train {result.timings['train_s']:.1f}s"
               f"  eval {result.timings['eval_s']:.1f}s")
    typer.echo(f"run:      {result.run_id}  {result.run_dir}")


def eval_only_command(run_folder: Path, as_json: bool, settings: Settings) -> None:
    """`tunix-tune run --eval-only --model RUN_FOLDER`: score a saved run folder's model again on its
    dataset's eval split; prints the metrics next to the ones its manifest recorded."""
    from training.catalog import ModelNotAvailable
    from training.dataset_files import MalformedDataset
    from training.datasets import UnknownDataset
    from training.hf_checkpoint import BrokenCheckpoint
    from training.reevaluate import SavedRunError, evaluate_saved, read_run_manifest

    try:
        manifest = read_run_manifest(run_folder)
        result = evaluate_saved(run_folder, settings.training_folders)
    except (SavedRunError, UnknownDataset, MalformedDataset, ModelNotAvailable, BrokenCheckpoint) as exc:
        typer.echo(f"error: {exc}", err=True)  # one line: no wrapping at the terminal's width
        raise typer.Exit(2) from None
    from training.catalog import EVALUATION_METRICS

    metrics = {k: result[k] for k in EVALUATION_METRICS}
    recorded = manifest.get("metrics") or {}
    compared = {k: v for k, v in result.items() if k not in metrics}
    if as_json:
        sys.stdout.write(json.dumps({"metrics": metrics, "recorded": recorded, "model": str(run_folder),
                                     "compared": compared}) + "\n")
        return
    typer.echo("metrics:  " + "  ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    typer.echo("recorded: " + ("  ".join(f"{k}={v:.4g}" for k, v in recorded.items() if isinstance(v, (int, float)))
                               or "none"))
    verdict = ("same score as recorded" if result["matches_recorded"] else
               f"score differs from the recorded {result['recorded_score']}")
    if result["dataset_changed"]:
        verdict += f"; dataset {result['dataset']} changed since the run ({result['recorded_content_hash']} -> " \
                   f"{result['content_hash']})"
    if result["predictions_changed"]:
        verdict += f"; {result['predictions_changed']} of {result['eval_size']} predictions differ from predictions.jsonl"
    typer.echo(f"compared: {verdict}")
    typer.echo(f"model:    {run_folder}  ({result['weights']}: {result['weights_path']})")
