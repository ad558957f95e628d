"""`tunix-tune models ...`: the base models jobs can train (list), and the registry of
promoted models (promoted, versions)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from app.cli.client import JSON, api_session, connection, print_json

models = typer.Typer(help="Base models jobs can train, and promoted models, through the HTTP API.",
                     no_args_is_help=True)
models.callback()(connection)


def _size(n: int | None) -> str:
    if n is None:
        return "—"
    return f"{n / 1e9:.2f}B" if n >= 1e8 else f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n:,}"


def _fits(fits: bool, gib: float | None) -> str:
    return "—" if gib is None else f"{'yes' if fits else 'no'} {gib:.1f}G"


@models.command("list")
def list_models(ctx: typer.Context, as_json: bool = JSON) -> None:
    """Built-in models, folders and .gguf files under TUNIX_MODELS_DIR, hub models in the Hugging Face
    cache, Ollama and LM Studio models: family, size, GGUF quantization, and whether LoRA / full
    fine-tuning fits in memory at the default batch."""
    with api_session(ctx) as api:
        found = api.get("/api/base-models")
    if as_json:
        print_json(found)
        return
    table = Table(caption="LoRA / full: fits in memory at the default batch, and the estimate")
    table.add_column("model", no_wrap=True)
    for name in ("source", "family", "parameters", "quant", "LoRA", "full"):
        table.add_column(name, no_wrap=True)
    table.add_column("problem", overflow="fold")
    for m in found:
        table.add_row(m["model_id"], m["source"], m["family"] or "—", _size(m["parameters"]),
                      m.get("quantization") or "—", _fits(m["fits_lora"], m["lora_gib"]), _fits(m["fits_full"], m["full_gib"]), m["problem"] or "")
    Console().print(table)


@models.command("promoted")
def promoted(ctx: typer.Context, as_json: bool = JSON) -> None:
    """The model registry: every promoted model with its latest version."""
    with api_session(ctx) as api:
        found = api.get("/api/models")
    if as_json:
        print_json(found)
        return
    table = Table("model", "versions", "latest", "stage", "metric", "job", "trial", "path")
    for m in found:
        v = m["latest"]
        metric = "—" if v["metric"] is None else f"{v['metric_name']} {v['metric']:.4g}"
        table.add_row(m["name"], str(m["versions"]), str(v["version"]), v["stage"], metric, v["job_id"], v["trial_id"],
                      v["path"])
    Console().print(table)


@models.command("versions")
def versions(ctx: typer.Context, name: str, as_json: bool = JSON) -> None:
    """Every promoted version of a model, newest first."""
    with api_session(ctx) as api:
        found = api.get(f"/api/models/{name}/versions")
    if as_json:
        print_json(found)
        return
    for v in found:
        metric = "—" if v["metric"] is None else f"{v['metric']:.4g}"
        typer.echo(f"{name} v{v['version']:<3} {v['stage']:<10} {v['metric_name']}={metric}  "
                   f"job {v['job_id']} trial {v['trial_id']}  by {v['actor']}  {v['path']}")
