"""The job's terminal event, from how its experiment ended: JobCancelled, JobFailed (too many
failed trials, or none scored) or JobCompleted with the best trial."""

from __future__ import annotations

import math
from pathlib import Path

import structlog

from producers.error_text import one_line
from producers.job_run import SOURCE, JobRun
from schemas import events as ev

log = structlog.get_logger("tuner")


def job_outcome(run: JobRun, grid) -> ev.Event:
    """`grid`: the Ray ResultGrid of the experiment; the limits are the job's as adjusted."""
    job_id, spec = run.job_id, run.spec
    if run.cancelled:
        return ev.JobCancelled(job_id=job_id, source=SOURCE, payload=ev.JobCancelledPayload(reason=run.stop_reason))
    failed = [r for r in grid if r.error is not None]
    if len(failed) > spec.max_failed_trials:
        return job_failed(job_id, f"{len(failed)} of {len(grid)} trials failed (max_failed_trials="
                                  f"{spec.max_failed_trials}); first error: {one_line(failed[0].error, job_id)}",
                          detail=failed[0].error)
    scored = [r for r in grid if r.error is None and _finite(r.metrics or {}, spec.metric_name)]
    if not scored:
        return job_failed(job_id, f"no trial reported a finite {spec.metric_name}")
    pick = max if spec.metric_mode == "max" else min
    best = pick(scored, key=lambda r: r.metrics[spec.metric_name])
    return ev.JobCompleted(job_id=job_id, source=SOURCE, payload=ev.JobCompletedPayload(
        best_trial_id=best.metrics["trial_id"],
        metric_name=spec.metric_name,
        best_metric=float(best.metrics[spec.metric_name]),
        best_params={k: v for k, v in best.config.items() if isinstance(v, (bool, int, float, str))},
        best_run_id=best.metrics.get("run_id"),
        best_checkpoint_path=str(Path(best.metrics["run_dir"]) / "checkpoint") if "run_dir" in best.metrics else None,
    ))


def job_failed(job_id, error: str | BaseException, detail: str | BaseException | None = None) -> ev.JobFailed:
    """The public error is one line (producers/error_text.py); what it was cut from (`error`,
    or `detail` when given: a traceback, an exception) goes to the tuner's log in full."""
    full = detail if detail is not None else error
    if isinstance(full, BaseException) or "\n" in str(full):
        log.warning("job failed", job_id=str(job_id), error=_full_text(full))
    return ev.JobFailed(job_id=job_id, source=SOURCE, payload=ev.JobFailedPayload(error=one_line(error, job_id)))


def _full_text(error: str | BaseException) -> str:
    if isinstance(error, BaseException):
        import traceback

        return "".join(traceback.format_exception(error)) or repr(error)
    return error


def _finite(metrics: dict, name: str) -> bool:
    value = metrics.get(name)
    return isinstance(value, (int, float)) and math.isfinite(value)
