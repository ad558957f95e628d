"""`tunix-tune demo`: the seed's example job through the running stack, over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import typer

from app.cli.stack import processes

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lr_sweep.json"


def _check(answer: httpx.Response, *expected: int) -> dict:
    if answer.status_code not in expected:
        raise typer.BadParameter(f"{answer.request.method} {answer.request.url} -> {answer.status_code}: {answer.text}")
    return answer.json()


def run_demo(spec_path: Path = EXAMPLE) -> None:
    with httpx.Client(base_url=processes.api_url(), timeout=30) as api:
        spec = json.loads(spec_path.read_text())
        typer.echo(f"POST /api/tuning/jobs  ({spec_path.name})")
        job = _check(api.post("/api/tuning/jobs", json=spec), 201, 202)
        job_id = job["job_id"]
        typer.echo(f"  job {job_id} is {job.get('status', 'accepted')}")
        typer.echo(f"POST /api/tuning/jobs/{job_id}/start")
        _check(api.post(f"/api/tuning/jobs/{job_id}/start"), 202)
        job = _check(api.get(f"/api/tuning/jobs/{job_id}"), 200)
        typer.echo(f"  job {job_id} is {job['status']}  ({len(job['trials'])} trials so far)")
        typer.echo(f"GET /api/tuning/jobs/{job_id}/events  (the audit trail, from the Kafka log)")
        for event in _check(api.get(f"/api/tuning/jobs/{job_id}/events"), 200):
            typer.echo(
                f"  {event['occurred_at']}  {event['type']:<20} partition {event['kafka_partition']}"
                f" offset {event['kafka_offset']}  by {event['source']}"
            )
    typer.echo(
        "\nThe job is running in the read model; trials will run once the tuner consumes JobStarted."
        f"\nAPI docs: {processes.api_url()}/docs   stop everything: tunix-tune down"
    )
