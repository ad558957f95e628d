"""`tunix-tune demo`: a sweep through the running stack, over HTTP, watched live to its end (the
same view as `tunix-tune jobs watch`): by default LoRA on SmolLM2-135M-Instruct, a real pretrained
LLM, against its untuned baseline; then, optionally, a job warm-started from it; then the best
model of the whole lineage promoted into the registry, with the command that tries it."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import typer
from rich.console import Console

from adapters.settings import process_settings
from app.cli.client import ApiClient, ApiError
from app.cli.watch import watch

SHOWN_ANSWERS = 3  # held-out questions shown untuned vs tuned


def run_demo(spec_path: Path, api_url: str | None = None, token: str | None = None, timeout_s: float = 1800,
             follow_up: Path | None = None, promote_as: str | None = None,
             try_it: tuple[str, str | None] | None = None) -> None:
    """Run the sweep in `spec_path`; then, with `follow_up`, a job warm-started from it (its
    warm_start.jobs is set to the sweep); then promote the best trial of all of them as `promote_as`
    and print the `tunix-tune generate` command that asks it `try_it` (prompt, system message)."""
    console = Console()
    try:
        with ApiClient(api_url, token) as api:
            jobs = [_sweep(api, console, json.loads(spec_path.read_text()), timeout_s)]
            if follow_up is not None:
                spec = json.loads(follow_up.read_text())
                spec["warm_start"] = {**spec.get("warm_start", {}), "jobs": [jobs[0]["job_id"]]}
                jobs.append(_sweep(api, console, spec, timeout_s))
                lineage = api.get(f"/api/tuning/jobs/{jobs[-1]['job_id']}")["lineage"]
                console.print(f"warm start: {lineage['seed_count']} trials of the sweep seeded TPE", soft_wrap=True)
            _show_gain(console, jobs[-1])
            if promote_as is not None:
                job, trial = lineage_best(jobs)
                if job is not jobs[-1]:
                    console.print(f"the last job's best ({_metric(jobs[-1])}) is worse than its parent's "
                                  f"({_metric(job)}): promoting the parent's trial {trial}", soft_wrap=True)
                _promote(api, console, job, trial, promote_as, try_it)
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


def lineage_best(jobs: list[dict]) -> tuple[dict, str]:
    """The job holding the best trial of all `jobs` (the last one on a tie) and that trial's id:
    a warm-started job may end below its parent, and the registry should get the better model."""
    scored = [job for job in jobs if job["best_metric"] is not None]
    if not scored:
        raise ApiError("no job of the demo has a best trial to promote")
    sign = 1 if jobs[-1]["metric_mode"] == "max" else -1
    best = max(reversed(scored), key=lambda job: sign * job["best_metric"])
    return best, best["best_trial_id"]


def _metric(job: dict) -> str:
    return f"{job['metric_name']}={job['best_metric']:.4g}" if job["best_metric"] is not None else "none"


def _show_gain(console: Console, job: dict) -> None:
    """The best trial against the untuned base model, and a few held-out answers of each."""
    baseline, best = job.get("baseline"), job.get("best_trial")
    if not baseline or not best or baseline.get("metric") is None:
        return
    metric = job["metric_name"]
    console.print(f"[bold]untuned {job['base_model_id']}: {metric}={baseline['metric']:.4g}; best trial "
                  f"{best['trial_id']}: {metric}={best['metrics'][metric]:.4g} ({best['gain']:+.4g}) on "
                  f"{baseline['eval_size']} held-out examples[/bold]", soft_wrap=True)
    root = process_settings().tuning_dir
    untuned, tuned = _answers(baseline.get("path"), root), _answers(best.get("artifact_path"), root)
    for before, after in list(zip(untuned, tuned))[:SHOWN_ANSWERS]:  # only where the files are on this machine
        console.print(f"  {before['prompt']}\n    untuned: {before['prediction']!r}\n    tuned:   {after['prediction']!r}"
                      f"  (expected {after['reference']!r})", soft_wrap=True, markup=False)


def _answers(folder: str | None, root: Path) -> list[dict]:
    """The predictions a run or baseline folder holds, when it lies under this machine's tuning
    folder (a path on the log is another system's word: nothing outside `root` is read)."""
    if not folder:
        return []
    path = (Path(folder) / "predictions.jsonl").resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        return []
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines()[:SHOWN_ANSWERS] if line.strip()]
    except (OSError, ValueError):
        return []
    return [r for r in rows if isinstance(r, dict) and {"prompt", "prediction", "reference"} <= r.keys()]


def _promote(api: ApiClient, console: Console, job: dict, trial_id: str, name: str,
             try_it: tuple[str, str | None] | None, wait_s: float = 30) -> None:
    answer = api.post(f"/api/tuning/jobs/{job['job_id']}/promote",
                      {"name": name, "trial_id": trial_id, "reason": "best of the demo's lineage"})
    deadline = time.monotonic() + wait_s
    while True:  # the registry is a read model: the version shows once the projector has it
        found = [v for v in api.get("/api/models") if v["name"] == name]
        mine = found and found[0]["latest"]["trial_id"] == trial_id and found[0]["latest"]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if not mine:
        console.print(f"promotion requested ({answer['event_id']}); see `tunix-tune models versions {name}`")
        return
    console.print(f"promoted trial {mine['trial_id']} of job {job['job_id']} ({mine['metric_name']}={mine['metric']:.4g}) "
                  f"as {name} v{mine['version']}: {mine['path']}", soft_wrap=True)
    console.print(f"evaluate it again: tunix-tune run --eval-only --model {mine['path']}", soft_wrap=True, markup=False)
    if try_it:
        prompt, system = try_it
        system_option = f" --system {shlex.quote(system)}" if system else ""
        console.print(f"try it:            tunix-tune generate --model {name}{system_option} {shlex.quote(prompt)}",
                      soft_wrap=True, markup=False)
