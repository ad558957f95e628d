"""A Ray Tune callback that turns every trial change into a TrialUpdated event.

Ray calls callbacks on the thread running Tuner.fit(); the job's publish function hands each
event to the tuner's event loop and waits for Kafka's acknowledgement, so an event is on the
log before Ray moves on. Ray pickles callbacks with the experiment (to restore it after a
crash), so the callback keeps only the job id and finds the job's JobRun by it.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from uuid import UUID

import ray.cloudpickle as cloudpickle
import structlog
from ray.tune import Callback
from ray.tune.experiment import Trial

from producers.error_text import one_line
from producers.job_run import SOURCE, JobRun
from schemas import events as ev
from schemas.artifact_layout import trial_run_folder
from schemas.metrics import TRIAL_DURATION, TRIALS_RUNNING
from schemas.statuses import TRIAL_TERMINAL

# Keys Ray adds to every result; the rest are the trial's own metrics.
_RAY_KEYS = {
    "time_this_iter_s", "done", "training_iteration", "trial_id", "date", "timestamp",
    "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
    "iterations_since_restore", "checkpoint_dir_name", "config", "experiment_tag", "node_id",
}
log = structlog.get_logger("tuner")


def trial_metrics(result: dict) -> dict[str, float]:
    """The trial's own numbers; a non-finite one (a diverged loss) is left out: JSON has no NaN,
    and the event must stay valid for every consumer."""
    return {
        k: float(v) for k, v in result.items()
        if k not in _RAY_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


class TrialEvents(Callback):
    def __init__(self, job_id: UUID):
        self.job_id = job_id
        self._announced: set[str] = set()
        self._ended: set[str] = set()  # trials whose terminal status is on the log
        self._started: dict[str, float] = {}  # trial_id -> when it first ran (for the metrics)
        self._first_step = True

    @property
    def run(self) -> JobRun:
        return JobRun.of(self.job_id)

    def _send(self, trial: Trial, status: str, **fields) -> None:
        if trial.trial_id in self._ended:
            return  # nothing follows a trial's end on the log
        result = trial.last_result or {}
        cost = self._cost(trial.trial_id, result)
        payload = ev.TrialUpdatedPayload(
            trial_id=trial.trial_id,
            status=status,
            params={k: v for k, v in trial.config.items() if isinstance(v, (bool, int, float, str))},
            metrics=trial_metrics(result),
            iteration=result.get("training_iteration"),
            run_id=result.get("run_id") or f"{self.job_id}-{trial.trial_id}",
            # The run folder; trial.path is Ray's folder of the trial, in the same job folder.
            artifact_path=str(trial_run_folder(Path(trial.path).parent, trial.trial_id)),
            node=result.get("node_id"),
            cpu_s=cost[0] if cost else None,
            gpu_s=cost[1] if cost else None,
            **fields,
        )
        self.run.publish(ev.TrialUpdated(job_id=self.job_id, source=SOURCE, payload=payload))
        if status == "running":
            self.run.running_trials.add(trial.trial_id)
        else:
            self.run.running_trials.discard(trial.trial_id)
        if status == "running" and trial.trial_id not in self._started:
            self._started[trial.trial_id] = time.monotonic()
            TRIALS_RUNNING.inc()
        if status in TRIAL_TERMINAL:
            self._ended.add(trial.trial_id)
            if (began := self._started.pop(trial.trial_id, None)) is not None:
                TRIALS_RUNNING.dec()
                TRIAL_DURATION.labels(status).observe(time.monotonic() - began)

    def _cost(self, trial_id: str, result: dict) -> tuple[float, float] | None:
        """Reserved CPU- and GPU-seconds of the trial so far (Ray's time_total_s counts every
        restart), written into the job's ledger that the cost budget reads."""
        seconds = result.get("time_total_s")
        if not isinstance(seconds, (int, float)):
            return self.run.costs.get(trial_id)
        request = self.run.spec.resources_per_trial
        # A packed trial holds one slot of a pack that reserves one trial's resources.
        share = 1 / result.get("pack_slots", 1)
        cost = (round(seconds * request.cpu * share, 3), round(seconds * request.gpu * share, 3))
        self.run.costs[trial_id] = cost
        return cost

    def on_step_begin(self, iteration: int, trials: list[Trial], **info) -> None:
        if getattr(self, "_first_step", True):  # (an experiment pickled by an older tuner lacks it)
            # First step of this run. A restored experiment's finished trials have their end on
            # the log; so may trials Ray's saved state still has running (the tuner was killed
            # between publishing their end and saving): the tuner read those from the log.
            self._first_step = False
            self._ended |= {t.trial_id for t in trials if t.status in (Trial.TERMINATED, Trial.ERROR)}
            self._ended |= self.run.ended_on_log
        for trial in trials:
            if trial.trial_id not in self._announced and trial.status == Trial.PENDING:
                self._announced.add(trial.trial_id)
                self._send(trial, "pending")

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        self.run.renewed[trial.trial_id] = time.monotonic()
        self._announced.add(trial.trial_id)
        self._send(trial, "running", reason=self.run.scheduler_notes.pop(trial.trial_id, None))

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info) -> None:
        self.run.renewed[trial.trial_id] = time.monotonic()
        self._send(trial, "running", reason=self.run.scheduler_notes.pop(trial.trial_id, None))

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        reason = self.run.scheduler_stops.pop(trial.trial_id, None) or self.run.stop_reason
        self._send(trial, "stopped" if reason else "completed", reason=reason)

    def on_experiment_end(self, trials: list[Trial], **info) -> None:
        """Trials that got no terminal event (stopped with the whole experiment, or never
        started) end as stopped, so none stays pending or running in the read model. Not when
        the job is handed over: Ray ends the experiment then too, and its trials go on elsewhere."""
        if self.run.handing_over:
            return
        for trial in trials:
            if trial.trial_id not in self._ended:
                self._send(trial, "stopped", reason=self.run.stop_reason or "experiment ended")

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        error = _error_text(trial, self.job_id)
        self._decide_on_failure(trial, error, "fail")
        self._send(trial, "failed", reason=error)

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        """Its worker or node died (or it raised) and Ray runs it again from its last checkpoint."""
        error, failures = _error_text(trial, self.job_id), trial.run_metadata.num_failures
        self._decide_on_failure(trial, error, "retry")
        self._send(trial, "stale", reason=f"{error}; retry {failures} of {trial.max_failures} from its last checkpoint")

    def _decide_on_failure(self, trial: Trial, error: str, outcome: str) -> None:
        if trial.trial_id in self._ended:
            return
        result = trial.last_result or {}
        failures, allowed = trial.run_metadata.num_failures, trial.max_failures
        node = _node_of(trial, result)
        where = f" on {node}" if node else ""
        then = (f"Ray runs it again from its last checkpoint (retry {failures} of {allowed})" if outcome == "retry"
                else f"it failed for good after {failures - 1} retr{'y' if failures == 2 else 'ies'} "
                     f"(max_trial_retries={allowed})")
        self.run.decide("failure", "Ray", outcome, f"it raised{where} at iteration {result.get('training_iteration', 0)}:"
                        f" {error}; {then}", trial.trial_id, exception=error, node=node, node_id=result.get("node_id"),
                        iteration=result.get("training_iteration"), failures=failures, max_retries=allowed)


def _node_of(trial: Trial, result: dict) -> str | None:
    """Where the trial ran: its last report says, else Ray's placement, else the error's
    `ray::... (pid=..., ip=...)` line (a trial that raised before its first report)."""
    location = getattr(getattr(trial, "temporary_state", None), "location", None)
    found = result.get("hostname") or result.get("node_ip") or getattr(location, "hostname", None)
    if found:
        return found
    try:
        match = re.search(r"\bip=([\w.:-]+)", Path(trial.error_file).read_text())
    except (OSError, TypeError):
        return None
    return match.group(1) if match else None


def _error_text(trial: Trial, job_id) -> str:
    """The trial's error in one line (producers/error_text.py): its exception, which Ray pickles
    to a local file before calling back, else the last exception line of the text trace Ray
    writes next to it (the copies in storage may not be synced yet). The whole trace goes to the
    tuner's log."""
    try:
        text = Path(trial.error_file).read_text()
    except (OSError, TypeError):
        text = None
    log.warning("trial failed", job_id=str(job_id), trial_id=trial.trial_id, error=text)
    try:
        with open(trial.pickled_error_file, "rb") as f:
            return one_line(cloudpickle.load(f), job_id)
    except Exception:  # no pickle (an error that is not Ray's), or one that cannot be rebuilt here
        return one_line(text, job_id) if text else "trial errored"
