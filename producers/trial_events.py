"""A Ray Tune callback that turns every trial change into a TrialUpdated event.

Ray calls callbacks on the thread running Tuner.fit(); the job's publish function hands each
event to the tuner's event loop and waits for Kafka's acknowledgement, so an event is on the
log before Ray moves on. Ray pickles callbacks with the experiment (to restore it after a
crash), so the callback keeps only the job id and finds the publish function in PUBLISHERS.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from ray.tune import Callback
from ray.tune.experiment import Trial

from schemas import events as ev

SOURCE = "tunix-tune.tuner"
Publish = Callable[[ev.Event], None]
PUBLISHERS: dict[UUID, Publish] = {}  # job_id -> publish, registered by the tuner
# Keys Ray adds to every result; the rest are the trial's own metrics.
_RAY_KEYS = {
    "time_this_iter_s", "done", "training_iteration", "trial_id", "date", "timestamp",
    "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
    "iterations_since_restore", "checkpoint_dir_name", "config", "experiment_tag",
}


def trial_metrics(result: dict) -> dict[str, float]:
    return {
        k: float(v) for k, v in result.items()
        if k not in _RAY_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


class TrialEvents(Callback):
    def __init__(self, job_id: UUID):
        self.job_id = job_id
        self.failed: set[str] = set()
        self._announced: set[str] = set()

    def publish(self, event: ev.Event) -> None:
        PUBLISHERS[self.job_id](event)

    def _send(self, trial: Trial, status: str, **fields) -> None:
        result = trial.last_result or {}
        payload = ev.TrialUpdatedPayload(
            trial_id=trial.trial_id,
            status=status,
            params={k: v for k, v in trial.config.items() if isinstance(v, (bool, int, float, str))},
            metrics=trial_metrics(result),
            iteration=result.get("training_iteration"),
            run_id=result.get("run_id") or f"{self.job_id}-{trial.trial_id}",
            artifact_path=trial.path,  # under storage_path: artifacts/tuning/{job_id}/...
            **fields,
        )
        self.publish(ev.TrialUpdated(job_id=self.job_id, source=SOURCE, payload=payload))

    def on_step_begin(self, iteration: int, trials: list[Trial], **info) -> None:
        for trial in trials:
            if trial.trial_id not in self._announced and trial.status == Trial.PENDING:
                self._announced.add(trial.trial_id)
                self._send(trial, "pending")

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        self._announced.add(trial.trial_id)
        self._send(trial, "running")

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info) -> None:
        self._send(trial, "running")

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        self._send(trial, "completed")

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        self.failed.add(trial.trial_id)
        error = trial.get_error()
        self._send(trial, "failed", reason=f"{type(error).__name__}: {error}"[:10_000] if error else "trial errored")
