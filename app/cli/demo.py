"""`tunix-tune demo`: the example sweep through the running stack, over HTTP, watched live
to its end (the same view as `tunix-tune jobs watch`); by default then a TPE job warm-started
from it, whose best model is promoted into the registry."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console

from app.cli.client import ApiClient, ApiError
from app.cli.watch import watch


def run_demo(spec_path: Path, api_url: str | None = None, token: str | None = None, timeout_s: float = 1800,
             follow_up: Path | None = None, promote_as: str | None = None) -> None:
    """Run the sweep in `spec_path`; then, with `follow_up`, a job warm-started from it (its
    warm_start.jobs is set to the sweep); then promote the last job's best trial as `promote_as`."""
    console = Console()
    try:
        with ApiClient(api_url, token) as api:
            job = _sweep(api, console, json.loads(spec_path.read_text()), timeout_s)
            if follow_up is not None:
                spec = json.loads(follow_up.read_text())
                spec["warm_start"] = {**spec.get("warm_start", {}), "jobs": [job["job_id"]]}
                job = _sweep(api, console, spec, timeout_s)
                lineage = api.get(f"/api/tuning/jobs/{job['job_id']}")["lineage"]
                console.print(f"warm start: {lineage['seed_count']} trials of the sweep seeded TPE", soft_wrap=True)
            if promote_as is not None:
                _promote(api, console, job, promote_as)
    except ApiError as exc:
        typer.secho(str(exc), err=True, fg="red")
        raise typer.Exit(1) from None


def _sweep(api: ApiClient, console: Console, spec: dict, timeout_s: float) -> dict:
    job_id = api.create_job(spec)["job_id"]
    console.print(f"created job {job_id}: {spec['name']} ({spec['num_samples']} trials, "
                  f"{spec['max_concurrent_trials']} at a time)")
    api.post(f"/api/tuning/jobs/{job_id}/start")
    job = watch(api, job_id, console, timeout_s=timeout_s)
    trail = api.get(f"/api/tuning/jobs/{job_id}/events")
    console.print(f"audit trail: {len(trail)} events on the log (tunix-tune jobs events {job_id})", soft_wrap=True)
    if job["status"] != "completed":
        raise typer.Exit(1)
    return job


def _promote(api: ApiClient, console: Console, job: dict, name: str, wait_s: float = 30) -> None:
    answer = api.post(f"/api/tuning/jobs/{job['job_id']}/promote", {"name": name, "reason": "best of the demo"})
    deadline = time.monotonic() + wait_s
    while True:  # the registry is a read model: the version shows once the projector has it
        found = [v for v in api.get("/api/models") if v["name"] == name]
        mine = found and found[0]["latest"]["trial_id"] == job["best_trial_id"] and found[0]["latest"]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if not mine:
        console.print(f"promotion requested ({answer['event_id']}); see `tunix-tune models versions {name}`")
        return
    console.print(f"promoted trial {mine['trial_id']} ({mine['metric_name']}={mine['metric']:.4g}) as {name} "
                  f"v{mine['version']}: {mine['path']}", soft_wrap=True)
    console.print(f"evaluate it again: tunix-tune run --eval-only --model {mine['path']}", soft_wrap=True)
