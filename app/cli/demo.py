"""`tunix-tune demo`: the example sweep through the running stack, over HTTP, to its end."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import typer

from app.cli.stack import processes

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lr_sweep.json"
TERMINAL = ("completed", "failed", "cancelled")


def _check(answer: httpx.Response, *expected: int) -> dict:
    if answer.status_code not in expected:
        raise typer.BadParameter(f"{answer.request.method} {answer.request.url} -> {answer.status_code}: {answer.text}")
    return answer.json()


def run_demo(spec_path: Path = EXAMPLE, timeout_s: float = 1800) -> None:
    with httpx.Client(base_url=processes.api_url(), timeout=30) as api:
        spec = json.loads(spec_path.read_text())
        job = _check(api.post("/api/tuning/jobs", json=spec), 201, 202)
        job_id = job["job_id"]
        typer.echo(f"created job {job_id}: {spec['name']} ({spec['num_samples']} trials, "
                   f"{spec['max_concurrent_trials']} at a time)")
        _check(api.post(f"/api/tuning/jobs/{job_id}/start"), 202)
        job = _follow(api, job_id, spec["num_samples"], timeout_s)
        _summary(api, job)


def _follow(api: httpx.Client, job_id: str, num_samples: int, timeout_s: float) -> dict:
    """Print a line whenever the trials' state changes, until the job ends (polling the API)."""
    deadline, last = time.monotonic() + timeout_s, None
    while True:
        job = _check(api.get(f"/api/tuning/jobs/{job_id}"), 200)
        counts = {s: sum(t["status"] == s for t in job["trials"]) for s in
                  ("pending", "running", "completed", "failed", "stopped")}
        line = (f"  {job['status']:<10} trials done {counts['completed'] + counts['failed'] + counts['stopped']}"
                f"/{num_samples}  running {counts['running']}  pending {counts['pending']}")
        if line != last:
            typer.echo(f"{time.strftime('%H:%M:%S')} {line}")
            last = line
        if job["status"] in TERMINAL:
            return job
        if time.monotonic() > deadline:
            typer.echo(f"job {job_id} did not finish in {timeout_s:.0f}s; it goes on: tunix-tune down stops it")
            raise typer.Exit(1)
        time.sleep(2)


def _summary(api: httpx.Client, job: dict) -> None:
    typer.echo(f"\njob {job['job_id']} {job['status']}" + (f": {job['error']}" if job["error"] else ""))
    for trial in sorted(job["trials"], key=lambda t: t["created_at"]):
        params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in trial["params"].items() if k in job["spec"]["search_space"])
        metric = trial["metrics"].get(job["metric_name"])
        typer.echo(f"  {trial['trial_id']}  {trial['status']:<9} {params:<40} "
                   f"{job['metric_name']}={metric if metric is None else round(metric, 2)}")
    best = job["best_trial"]
    if best:
        typer.echo(f"\nbest trial {best['trial_id']}: {job['metric_name']}={job['best_metric']:.2f} "
                   f"run {best['run_id']}\n  folder {best['artifact_path']}")
    events = _check(api.get(f"/api/tuning/jobs/{job['job_id']}/events"), 200)
    typer.echo(f"audit trail: {len(events)} events on the log (GET /api/tuning/jobs/{job['job_id']}/events)")
