"""`tunix-tune jobs ...`: tuning jobs over the HTTP API (submit, list, show, start, cancel,
events, watch; steering: adjust, extend, fork, promote, compare). Every command takes --json
for scripts; errors are one readable message and exit code 1, never a traceback."""

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
REASON = typer.Option(None, "--reason", help="Why: kept on the job's audit trail")


def _note(reason: str | None) -> dict | None:
    return {"reason": reason} if reason else None


def _answer(answer: dict, as_json: bool, text: str) -> None:
    print_json(answer) if as_json else typer.echo(text)


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
def show(ctx: typer.Context, job_id: str, as_json: bool = JSON,
         importance: bool = typer.Option(False, "--importance", help="Also hyperparameter importances (PED-ANOVA)"),
         as_of: str = typer.Option(None, "--as-of", help="The job as it was at this log position (an offset, see "
                                   "log_position) or ISO time, rebuilt from its log"),
         ) -> None:
    """A job: its trials, their metrics and the best trial (lineage, cost, importances)."""
    with api_session(ctx) as api:
        job = api.get(f"/api/tuning/jobs/{job_id}", as_of=as_of)
        history = _as_of(api.get(f"/api/tuning/jobs/{job_id}/history"), job) if as_of else (
            api.get(f"/api/tuning/jobs/{job_id}/history"))
        found = api.get(f"/api/tuning/jobs/{job_id}/importance") if importance else None
    if as_json:
        print_json({**job, "importance": found} if importance else job)
        return
    console.print(render(job, history))
    if as_of:
        console.print(f"as of log position {job['log_position']} (requested: {as_of}), rebuilt from the log")
    for line in summary_lines(job)[1:]:
        console.print(line, soft_wrap=True)
    if job.get("lineage"):
        lineage = job["lineage"]
        point = f" at trial {lineage['at_trials']}" if lineage.get("at_trials") is not None else ""
        console.print(f"lineage: {lineage['relation']} from {', '.join(lineage['parents'])}{point}, "
                      f"{lineage['seed_count']} seed trial(s)", soft_wrap=True)
    if job.get("cost"):
        cost = job["cost"]
        console.print(f"cost:    {cost['cpu_s']:.0f} cpu_s, {cost['gpu_s']:.0f} gpu_s, {cost['trial_s']:.0f} trial-seconds")
    if found is not None:
        console.print(f"importance ({found['method']}, {found['trials_used']} trials): " + (
            ", ".join(f"{name} {value:.2f}" for name, value in found["importances"].items()) or found["note"] or "—"))


def _as_of(history: list[dict], job: dict) -> list[dict]:
    """The learning curves up to each trial's iteration in the job as of then."""
    reached = {t["trial_id"]: t["iteration"] or 0 for t in job["trials"]}
    cut = [{**h, "points": [p for p in h["points"] if (p["iteration"] or 0) <= reached[h["trial_id"]]]}
           for h in history if h["trial_id"] in reached]
    return [h for h in cut if h["points"]]


@jobs.command()
def start(ctx: typer.Context, job_id: str, reason: str = REASON, as_json: bool = JSON) -> None:
    """Start a created job."""
    with api_session(ctx) as api:
        answer = api.post(f"/api/tuning/jobs/{job_id}/start", _note(reason))
    _answer(answer, as_json, f"{job_id}  start requested")


@jobs.command()
def cancel(ctx: typer.Context, job_id: str, reason: str = REASON, as_json: bool = JSON) -> None:
    """Cancel a job: running trials stop, pending ones never start."""
    with api_session(ctx) as api:
        answer = api.post(f"/api/tuning/jobs/{job_id}/cancel", _note(reason))
    _answer(answer, as_json, f"{job_id}  cancel requested")


@jobs.command()
def adjust(
    ctx: typer.Context, job_id: str,
    max_concurrent_trials: int = typer.Option(None, "--max-concurrent-trials", help="Trials at once"),
    num_samples: int = typer.Option(None, "--num-samples", help="Trials in all (not below those started)"),
    time_budget_s: float = typer.Option(None, "--time-budget-s", help="Seconds the job may run in all"),
    no_time_budget: bool = typer.Option(False, "--no-time-budget", help="Remove the time budget"),
    max_failed_trials: int = typer.Option(None, "--max-failed-trials"),
    reason: str = REASON, as_json: bool = JSON,
) -> None:
    """Change a created or running job; the tuner applies it within seconds, running trials go on."""
    body = {k: v for k, v in {"max_concurrent_trials": max_concurrent_trials, "num_samples": num_samples,
                              "time_budget_s": time_budget_s, "max_failed_trials": max_failed_trials}.items()
            if v is not None}
    if no_time_budget:
        body["time_budget_s"] = None
    with api_session(ctx) as api:
        answer = api.patch(f"/api/tuning/jobs/{job_id}", {**body, **(_note(reason) or {})})
    _answer(answer, as_json, f"{job_id}  adjusted: {json.dumps(body)}")


@jobs.command()
def extend(ctx: typer.Context, job_id: str, num_samples: int = typer.Argument(..., help="Trials to add"),
           reason: str = REASON, as_json: bool = JSON) -> None:
    """Give a completed job more trials; its searcher continues where it stopped."""
    with api_session(ctx) as api:
        answer = api.post(f"/api/tuning/jobs/{job_id}/extend", {"num_samples": num_samples, **(_note(reason) or {})})
    _answer(answer, as_json, f"{job_id}  extended by {num_samples} trial(s)")


@jobs.command()
def fork(
    ctx: typer.Context, job_id: str,
    at_trials: int = typer.Option(None, "--at-trials", help="Seed with the parent's first N ended trials"),
    changes: str = typer.Option("{}", "--changes", help='Spec fields to change, as JSON: \'{"scheduler": "asha"}\''),
    start_it: bool = typer.Option(False, "--start", help="Start the new job"),
    reason: str = REASON, as_json: bool = JSON,
) -> None:
    """A new job from this one: its spec with changes, its searcher seeded with this job's trials."""
    try:
        changed = json.loads(changes)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--changes") from None
    with api_session(ctx) as api:
        job = api.post(f"/api/tuning/jobs/{job_id}/fork", {"at_trials": at_trials, "changes": changed,
                                                           **(_note(reason) or {})})
        if start_it:
            api.post(f"/api/tuning/jobs/{job['job_id']}/start")
    _answer(job, as_json, f"{job['job_id']}  forked from {job_id}  ({job['name']})")


@jobs.command()
def promote(
    ctx: typer.Context, job_id: str, name: str = typer.Option(..., "--name", help="Registry name"),
    trial_id: str = typer.Option(None, "--trial", help="Trial to promote (default: the best)"),
    stage: str = typer.Option("candidate", "--stage"), reason: str = REASON, as_json: bool = JSON,
) -> None:
    """Copy a trial's model into artifacts/models/NAME/VERSION (the next version)."""
    body = {"name": name, "stage": stage, "trial_id": trial_id, **(_note(reason) or {})}
    with api_session(ctx) as api:
        answer = api.post(f"/api/tuning/jobs/{job_id}/promote", {k: v for k, v in body.items() if v is not None})
    _answer(answer, as_json, f"{job_id}  promotion of {trial_id or 'its best trial'} to {name} requested "
                             "(see `tunix-tune models versions NAME`)")


@jobs.command()
def compare(ctx: typer.Context, job_ids: list[str] = typer.Argument(..., help="Two or more job ids"),
            as_json: bool = JSON) -> None:
    """Jobs side by side: best score, best configuration, what each spent."""
    with api_session(ctx) as api:
        rows = api.get("/api/tuning/compare", jobs=job_ids)
    if as_json:
        print_json(rows)
        return
    table = Table("job", "status", "trials", "best", "cpu_s", "trial-s", "best configuration")
    for row in rows:
        best = "—" if row["best_metric"] is None else f"{row['best_metric']:.4g}"
        table.add_row(row["name"], row["status"], str(row["trials"]), f"{row['metric_name']} {best}",
                      f"{row['cost']['cpu_s']:.0f}", f"{row['cost']['trial_s']:.0f}", json.dumps(row["best_params"]))
    console.print(table)


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
        if event["type"] == "TrialUpdated":
            detail = (f"{payload['trial_id']} {payload['status']} iteration={payload.get('iteration')}"
                      + (f" ({payload['reason']})" if payload.get("reason") else ""))
        elif event["type"] == "DecisionMade":
            detail = f"{payload['trial_id'] or 'job'} {payload['kind']}/{payload['outcome']}: {payload['summary']}"
        else:
            detail = json.dumps(payload, default=str)[:160]
        by = f"  [by {event['actor']}{': ' + event['reason'] if event.get('reason') else ''}]" if event.get("actor") else ""
        typer.echo(f"{event['occurred_at'][:23]}  {event['kafka_offset']:>6}  {event['type']:<18} {detail}{by}")


@jobs.command("watch")
def watch_job(ctx: typer.Context, job_id: str, as_json: bool = JSON) -> None:
    """A live view of the job until it ends: trials, progress, metrics, the best trial."""
    with api_session(ctx) as api:
        job = watch(api, job_id, Console(stderr=True) if as_json else console)
    if as_json:
        print_json(job)
