"""`tunix-tune jobs ...`: tuning jobs over the HTTP API (submit, list, show, start, cancel,
events, watch). Every command takes --json for scripts; errors are one readable message and
exit code 1, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from app.cli.client import JSON, api_session, connection, print_json
from app.cli.watch import render, summary_lines, watch

jobs = typer.Typer(help="Tuning jobs, through the HTTP API.", no_args_is_help=True)
console = Console()
jobs.callback()(connection)


def _load_spec(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="SPEC") from None
    except ValueError as exc:
        raise typer.BadParameter(f"{path} is not valid JSON: {exc}", param_hint="SPEC") from None


@jobs.command()
def submit(
    ctx: typer.Context,
    spec: Path = typer.Argument(..., help="Job spec JSON file (see examples/lr_sweep.json)"),
    start: bool = typer.Option(False, "--start", help="Start the job once created"),
    follow: bool = typer.Option(False, "--watch", help="Start it and watch it to its end"),
    as_json: bool = JSON,
) -> None:
    """Create a job from a spec file (and start / watch it)."""
    body = _load_spec(spec)
    with api_session(ctx) as api:
        job = api.create_job(body)
        job_id = job["job_id"]
        if not as_json:
            typer.echo(f"{job_id}  created  ({job['name']})")
        if start or follow:
            api.post(f"/api/tuning/jobs/{job_id}/start")
        if follow:
            job = watch(api, job_id, Console(stderr=True) if as_json else console)
        if as_json:
            print_json(job)
        elif start and not follow:
            typer.echo(f"{job_id}  start requested")


@jobs.command("list")
def list_jobs(
    ctx: typer.Context,
    status: str = typer.Option(None, help="Only jobs in this status"),
    limit: int = typer.Option(50, min=1, max=200),
    offset: int = typer.Option(0, min=0),
    as_json: bool = JSON,
) -> None:
    """Jobs, newest first."""
    with api_session(ctx) as api:
        page = api.get("/api/tuning/jobs", status=status, limit=limit, offset=offset)
    if as_json:
        print_json(page)
        return
    table = Table("name", "status", "trials", "metric", "best", "created")
    table.add_column("job", no_wrap=True, min_width=36)
    for job in page["items"]:
        best = "—" if job["best_metric"] is None else f"{job['best_metric']:.4g}"
        table.add_row(job["name"], job["status"], str(job["num_samples"]),
                      f"{job['metric_name']} ({job['metric_mode']})", best, job["created_at"][:16], job["job_id"])
    console.print(table)
    console.print(f"{len(page['items'])} of {page['total']} jobs")


@jobs.command()
def show(ctx: typer.Context, job_id: str, as_json: bool = JSON) -> None:
    """A job: its trials, their metrics and the best trial."""
    with api_session(ctx) as api:
        job = api.get(f"/api/tuning/jobs/{job_id}")
        history = api.get(f"/api/tuning/jobs/{job_id}/history")
    if as_json:
        print_json(job)
        return
    console.print(render(job, history))
    for line in summary_lines(job)[1:]:
        console.print(line, soft_wrap=True)


@jobs.command()
def start(ctx: typer.Context, job_id: str, as_json: bool = JSON) -> None:
    """Start a created job."""
    with api_session(ctx) as api:
        answer = api.post(f"/api/tuning/jobs/{job_id}/start")
    print_json(answer) if as_json else typer.echo(f"{job_id}  start requested")


@jobs.command()
def cancel(ctx: typer.Context, job_id: str, as_json: bool = JSON) -> None:
    """Cancel a job: running trials stop, pending ones never start."""
    with api_session(ctx) as api:
        answer = api.post(f"/api/tuning/jobs/{job_id}/cancel")
    print_json(answer) if as_json else typer.echo(f"{job_id}  cancel requested")


@jobs.command()
def events(ctx: typer.Context, job_id: str, as_json: bool = JSON) -> None:
    """The job's audit trail: every event on the log, in order."""
    with api_session(ctx) as api:
        trail = api.get(f"/api/tuning/jobs/{job_id}/events")
    if as_json:
        print_json(trail)
        return
    for event in trail:
        payload = event["payload"]
        detail = (f"{payload['trial_id']} {payload['status']} iteration={payload.get('iteration')}"
                  + (f" ({payload['reason']})" if payload.get("reason") else "")
                  if event["type"] == "TrialUpdated" else json.dumps(payload, default=str)[:160])
        typer.echo(f"{event['occurred_at'][:23]}  {event['kafka_offset']:>6}  {event['type']:<18} {detail}")


@jobs.command("watch")
def watch_job(ctx: typer.Context, job_id: str, as_json: bool = JSON) -> None:
    """A live view of the job until it ends: trials, progress, metrics, the best trial."""
    with api_session(ctx) as api:
        job = watch(api, job_id, Console(stderr=True) if as_json else console)
    if as_json:
        print_json(job)
