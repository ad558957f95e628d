"""`tunix-tune jobs watch`: a live view of a job, drawn from the API until the job ends.

`render` is a pure function of the job and its metric history (what GET /jobs/{id} and
GET /jobs/{id}/history answer), so the view can be tested without a terminal.
"""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from app.cli.client import ApiClient, ApiError
from schemas.statuses import TERMINAL_JOB_STATUSES, TRIAL_TERMINAL
from training.hyperparams import reports_per_run

_STATUS_STYLE = {"pending": "dim", "running": "cyan", "completed": "green", "failed": "red", "stopped": "yellow"}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def best_of(values: list[float], mode: str) -> float | None:
    return (max if mode == "max" else min)(values) if values else None


def best_trial_so_far(job: dict) -> dict | None:
    """The job's best trial once it has one, else the best finished trial by the metric."""
    if job.get("best_trial"):
        return job["best_trial"]
    metric = job["metric_name"]
    done = [t for t in job["trials"] if t["status"] == "completed" and metric in t["metrics"]]
    value = best_of([t["metrics"][metric] for t in done], job["metric_mode"])
    return next((t for t in done if t["metrics"][metric] == value), None)


def render(job: dict, history: list[dict]) -> Group:
    metric, mode = job["metric_name"], job["metric_mode"]
    searched = list(job["spec"].get("search_space", {}))
    curves = {h["trial_id"]: [p["metrics"][metric] for p in h["points"] if metric in p["metrics"]] for h in history}
    done = sum(t["status"] in TRIAL_TERMINAL for t in job["trials"])

    header = Table.grid(padding=(0, 1))
    header.add_row(Text(f"{job['name']}", style="bold"), Text(job["status"], style="bold"),
                   Text(f"{metric} ({mode})  job {job['job_id']}", style="dim"))
    overall = Table.grid(padding=(0, 1))
    overall.add_row("trials", ProgressBar(total=job["num_samples"], completed=done, width=40),
                    f"{done}/{job['num_samples']} done, "
                    f"{sum(t['status'] == 'running' for t in job['trials'])} running")

    table = Table(expand=False, show_edge=False, pad_edge=False, caption=f"latest / best: {metric} reported by the trial")
    table.add_column("trial", no_wrap=True, min_width=11)
    table.add_column("status", no_wrap=True, min_width=9)
    for name in searched:
        table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=10)
    # A packed job's trials share its pack: each one's slot (trials in one slot ran one after another).
    packed = any("pack_slot" in trial["metrics"] for trial in job["trials"])
    if packed:
        table.add_column("slot", no_wrap=True)
    table.add_column("progress", no_wrap=True)
    table.add_column("latest", no_wrap=True, min_width=6)
    table.add_column("best", no_wrap=True, min_width=6)
    baseline = job.get("baseline")
    if baseline:
        table.add_column("gain", no_wrap=True, min_width=6)
    table.add_column("note", max_width=48, overflow="fold")
    for trial in job["trials"]:
        reports = reports_per_run(trial["params"]) if trial["params"] else 1
        iteration = reports if trial["status"] == "completed" else min(trial["iteration"] or 0, reports)
        table.add_row(
            trial["trial_id"], Text(trial["status"], style=_STATUS_STYLE.get(trial["status"], "")),
            *(_fmt(trial["params"].get(name)) for name in searched),
            *([_slot(trial["metrics"])] if packed else []),
            ProgressBar(total=reports, completed=iteration, width=10),
            _fmt(trial["metrics"].get(metric)),
            _fmt(best_of(curves.get(trial["trial_id"], []), mode)),
            *([_gain(trial.get("gain"))] if baseline else []),
            Text(trial["reason"] or "", style="dim"),
        )

    best = best_trial_so_far(job)
    footer = Text(
        f"best so far: trial {best['trial_id']}  {metric}={_fmt(best['metrics'].get(metric))}{_over(best, baseline)}"
        if best else "best so far: — (no finished trial yet)", style="bold green" if best else "dim",
    )
    parts = [header, overall, Text(baseline_line(job), style="cyan")] if baseline else [header, overall]
    parts += [table, footer]
    if job.get("error"):
        parts.append(Text(f"error: {job['error']}", style="red"))
    return Group(*parts)


def _slot(metrics: dict) -> str:
    if "pack_slot" not in metrics:
        return "—"
    return f"{int(metrics['pack_slot'])}/{int(metrics.get('pack_slots', 0))}"


def summary_lines(job: dict) -> list[str]:
    lines = [f"job {job['job_id']} {job['status']}" + (f": {job['error']}" if job.get("error") else "")]
    if job.get("baseline"):
        lines.append(baseline_line(job))
    best = best_trial_so_far(job)
    if best:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in best["params"].items() if k in job["spec"]["search_space"])
        lines += [f"best trial {best['trial_id']}: {job['metric_name']}={_fmt(best['metrics'].get(job['metric_name']))}"
                  f"{_over(best, job.get('baseline'))} ({params})",
                  f"  run {best['run_id']}", f"  run folder {best['artifact_path']}"]
    return lines


def baseline_line(job: dict) -> str:
    """The job's baseline: the untuned base model's score, or why it has none."""
    baseline = job["baseline"]
    if baseline.get("error"):
        return f"baseline (untuned base model): not scored: {baseline['error']}"
    others = ", ".join(f"{k}={_fmt(v)}" for k, v in baseline["metrics"].items()
                       if k != job["metric_name"] and k in ("exact_match", "contains", "eval_loss", "score"))
    return (f"baseline (untuned base model): {job['metric_name']}={_fmt(baseline['metric'])}"
            + (f" ({others})" if others else "") + f" on {baseline.get('eval_size')} held-out examples")


def _over(trial: dict, baseline: dict | None) -> str:
    return "" if not baseline or trial.get("gain") is None else f", {_gain(trial['gain'])} over the baseline"


def _gain(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4g}"


def _status_line(job: dict) -> str:
    counts = {s: sum(t["status"] == s for t in job["trials"]) for s in ("pending", "running", *TRIAL_TERMINAL)}
    done = sum(counts[s] for s in TRIAL_TERMINAL)
    return (f"{job['status']:<10} trials done {done}/{job['num_samples']}  "
            f"running {counts['running']}  pending {counts['pending']}")


def watch(api: ApiClient, job_id: str, console: Console, interval_s: float = 1.0,
          timeout_s: float | None = None) -> dict:
    """Redraw until the job ends (or timeout_s passes: ApiError); returns the last job view.

    On a terminal the view is redrawn in place; elsewhere (a log, CI) a line is printed
    whenever the counts change, and the full view once at the end.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def fetch() -> tuple[dict, list[dict]]:
        return api.get(f"/api/tuning/jobs/{job_id}"), api.get(f"/api/tuning/jobs/{job_id}/history")

    job, history = fetch()
    last_line = None
    with Live(render(job, history), console=console, auto_refresh=False) as live:
        while True:
            live.update(render(job, history), refresh=console.is_terminal)
            if not console.is_terminal and (line := _status_line(job)) != last_line:
                console.print(f"{time.strftime('%H:%M:%S')} {line}", soft_wrap=True)
                last_line = line
            if job["status"] in TERMINAL_JOB_STATUSES:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise ApiError(f"job {job_id} did not finish within {timeout_s:.0f} s; it goes on "
                               f"(`tunix-tune jobs cancel {job_id}` stops it)")
            time.sleep(interval_s)
            job, history = fetch()
    if not console.is_terminal:
        console.line()  # Live's last view ends without one off a terminal; a terminal's gets it from Live
    for line in summary_lines(job):
        console.print(line, soft_wrap=True)
    return job
