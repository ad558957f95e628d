"""`tunix-tune demo`: the example sweep through the running stack, over HTTP, watched live
to its end (the same view as `tunix-tune jobs watch`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from app.cli.client import ApiClient, ApiError
from app.cli.watch import watch


def run_demo(spec_path: Path, api_url: str | None = None, token: str | None = None, timeout_s: float = 1800) -> None:
    console = Console()
    spec = json.loads(spec_path.read_text())
    try:
        with ApiClient(api_url, token) as api:
            job_id = api.create_job(spec)["job_id"]
            console.print(f"created job {job_id}: {spec['name']} ({spec['num_samples']} trials, "
                          f"{spec['max_concurrent_trials']} at a time)")
            api.post(f"/api/tuning/jobs/{job_id}/start")
            job = watch(api, job_id, console, timeout_s=timeout_s)
            trail = api.get(f"/api/tuning/jobs/{job_id}/events")
    except ApiError as exc:
        typer.secho(str(exc), err=True, fg="red")
        raise typer.Exit(1) from None
    console.print(f"audit trail: {len(trail)} events on the log (tunix-tune jobs events {job_id})", soft_wrap=True)
    if job["status"] != "completed":
        raise typer.Exit(1)
