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
    except (UnknownDataset, MalformedDataset, ModelNotAvailable, NotImplementedError) as exc:
        console.print(f"[red]error:[/red] {exc}")
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
