"""`tunix-tune audit ...` (verify, what-if) and `tunix-tune jobs why`: the job's log asked why
each trial ended as it did, whether its searcher would decide the same again, and what another
scheduler would have done with the same learning curves."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from app.cli.client import JSON, api_session, connection, print_json

audit = typer.Typer(help="Check a job's decisions against its log.", no_args_is_help=True)
audit.callback()(connection)
console = Console()


def why(ctx: typer.Context, job_id: str, trial_id: str, as_json: bool = JSON) -> None:
    """Why a trial ended as it did: the verdict, then every decision about it in log order."""
    with api_session(ctx) as api:
        found = api.get(f"/api/tuning/jobs/{job_id}/trials/{trial_id}/why")
    if as_json:
        print_json(found)
        return
    console.print(f"trial {trial_id}: {found['verdict']}", soft_wrap=True, markup=False)
    for d in found["decisions"]:
        about = "job" if d["trial_id"] is None else "   "
        console.print(f"  {d['occurred_at'][11:23]}  {about} {d['kind']:<10} {d['outcome']:<9} {d['summary']}",
                      soft_wrap=True, markup=False)


def _read_log(path: Path) -> list[dict]:
    """A job's events as `jobs events --json` writes them (a JSON list), or one event per line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--log") from None
    try:
        found = json.loads(text)
        return found if isinstance(found, list) else [found]
    except ValueError:
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise typer.BadParameter(f"{path} is neither a JSON list nor JSON lines: {exc}", param_hint="--log") from None


@audit.command()
def verify(
    ctx: typer.Context, job_id: str,
    log: Path = typer.Option(None, "--log", help="Verify this copy of the job's log (`jobs events ID --json`) "
                             "instead of the one the API serves"),
    as_json: bool = JSON,
) -> None:
    """Run the job's searcher again offline, fed the results in the order the log recorded them,
    and check it suggests the same configurations. Exit 1 with the first difference."""
    from pydantic import ValidationError

    from schemas.api import EventOut
    from service.audit.verify import verify as replay  # Ray and Optuna: loaded only for this command

    if log is None:
        with api_session(ctx) as api:
            raw = api.get(f"/api/tuning/jobs/{job_id}/events")
    else:
        raw = _read_log(log)
    try:
        events = [EventOut.model_validate(e) for e in raw if str(e.get("job_id")) == job_id]
        found = replay(events)
    except (ValidationError, ValueError) as exc:
        typer.secho(f"cannot verify job {job_id}: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None
    if as_json:
        print_json({**vars(found), "ok": found.ok})
    elif found.ok:
        typer.echo(f"verified: {found.algorithm} (seed {found.seed}) replayed all {found.suggestions} suggestions "
                   "of the log, in its order, to the same configurations")
    else:
        typer.echo(f"NOT verified: {found.algorithm} (seed {found.seed}), {found.matched} of {found.suggestions} "
                   f"suggestions matched; first difference: {found.difference}")
    for note in found.notes:
        typer.echo(f"note: {note}", err=True)
    if not found.ok:
        raise typer.Exit(1)


@audit.command("what-if")
def what_if(
    ctx: typer.Context, job_id: str,
    scheduler: str = typer.Option("asha", "--scheduler", help="The scheduler to replay (asha)"),
    grace_period: int = typer.Option(1, "--grace-period", min=1, help="Reports before a trial can be stopped"),
    reduction_factor: float = typer.Option(2, "--reduction-factor", min=1.1, help="Keep the best 1/this at each rung"),
    max_t: int = typer.Option(None, "--max-t", min=1, help="Reports of a whole trial (default: the most recorded)"),
    metric: str = typer.Option(None, "--metric", help="Compare on this metric (default: the job's when reported "
                               "along the way, else eval_loss)"),
    mode: str = typer.Option(None, "--mode", help="min or max, with --metric"),
    as_json: bool = JSON,
) -> None:
    """Replay another scheduler over the job's recorded learning curves: which trials it would
    have stopped, and the trial-seconds saved against what actually ran."""
    with api_session(ctx) as api:
        found = api.get(f"/api/tuning/jobs/{job_id}/what-if", scheduler=scheduler, grace_period=grace_period,
                        reduction_factor=reduction_factor, max_t=max_t, metric=metric, mode=mode)
    if as_json:
        print_json(found)
        return
    console.print(f"{found['scheduler']} (grace_period={found['grace_period']}, reduction_factor="
                  f"{found['reduction_factor']:g}, max_t={found['max_t']}) on {found['metric']} ({found['mode']}) "
                  f"over {found['trials']} trials", soft_wrap=True)
    table = Table("trial", "stopped at", "rung", found["metric"], "cutoff", "seconds saved")
    for s in found["stopped"]:
        table.add_row(s["trial_id"], f"iteration {s['iteration']}", f"{s['rung']:g}", f"{s['value']:.4g}",
                      f"{s['cutoff']:.4g}", f"{s['seconds_saved']:.1f}")
    if found["stopped"]:
        console.print(table)
    console.print(f"would stop {len(found['stopped'])} of {found['trials']} trials, saving "
                  f"{found['seconds_saved']:.1f} of {found['trial_s']:.1f} trial-seconds "
                  f"({found['saved_fraction']:.0%})")
    for note in found["notes"]:
        console.print(f"note: {note}", soft_wrap=True)
