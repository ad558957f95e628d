"""The schedulers of a job's experiment: Ray's FIFO, ASHA, HyperBand and PBT, each acting for
one job. On top of Ray's own behaviour they save Ray's experiment state when trials change,
fail trials whose lease lapsed, stop the experiment (resumable) when the job is handed over,
and write why they stopped or changed a trial into the job's JobRun (found by job id: Ray
pickles schedulers with the experiment)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from ray.train import Checkpoint
from ray.train._internal.session import _TrainingResult
from ray.tune.experiment import Trial
from ray.tune.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    PopulationBasedTraining,
    TrialScheduler,
)

from producers.job_run import JobRun
from schemas.values import json_scalar

TIME_ATTR = "training_iteration"  # one iteration = one report = eval_every training steps


class HandedOver(Exception):
    """Raised inside Ray's loop to stop a job's experiment where it is: its state is saved,
    its running trials resume from their last checkpoints under the job's next owner."""


class _ActsForAJob:
    """A scheduler of one job's experiment: knows the job, to write into its JobRun."""

    def __init__(self, job_id, **kwargs):
        super().__init__(**kwargs)
        self.job_id = job_id

    @property
    def run(self) -> JobRun:
        return JobRun.of(self.job_id)


class LeaseLapsedError(Exception):
    """A running trial reported nothing for longer than its job's trial_lease_s."""


class _EnforcesTrialLeases(_ActsForAJob):
    """Fails a running trial whose lease lapsed (no report for trial_lease_s): Ray stops it and
    runs it again from its last checkpoint while max_trial_retries allows (a `stale` update),
    else it ends `failed`. Checked at every step of Ray's loop."""

    def __init__(self, job_id, lease_s: float, **kwargs):
        super().__init__(job_id, **kwargs)
        self.lease_s = lease_s

    def choose_trial_to_run(self, tune_controller):
        controller = getattr(tune_controller, "_tune_controller", tune_controller)
        now = time.monotonic()
        if getattr(self, "lease_s", None) is None:  # pickled by a tuner that had no leases
            return super().choose_trial_to_run(tune_controller)
        for trial in controller.get_live_trials():
            renewed = self.run.renewed.get(trial.trial_id)
            if trial.status == Trial.RUNNING and renewed is not None and now - renewed > self.lease_s:
                self.run.renewed.pop(trial.trial_id)
                controller._process_trial_failure(trial, LeaseLapsedError(
                    f"lease lapsed: no report for {now - renewed:.0f}s (trial_lease_s={self.lease_s:g}); "
                    "presumed hung, its worker is stopped"))
        return super().choose_trial_to_run(tune_controller)


class _SavesStateOnTrialChanges(_ActsForAJob):
    """Saves Ray's experiment state (which trials exist, which ended, their latest
    checkpoints) as soon as a trial is added, reports or ends, on top of Ray's own periodic
    saves. A tuner killed with -9 then restores a list that knows every trial whose creation
    or end is on the log (none is run twice, none is lost) and checkpoints that still exist.
    Saving at every loop step instead (period 0) cost the driver ~9% of a core on two cores.

    The save happens in choose_trial_to_run, which Ray calls at the start of every step,
    after the previous step's status changes."""

    _changed = False

    def on_trial_add(self, tune_controller, trial) -> None:
        super().on_trial_add(tune_controller, trial)
        self._changed = True

    def on_trial_complete(self, tune_controller, trial, result) -> None:
        super().on_trial_complete(tune_controller, trial, result)
        self._changed = True

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        self._changed = True  # a report may carry a checkpoint; Ray may delete an older one
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_error(self, tune_controller, trial) -> None:
        super().on_trial_error(tune_controller, trial)
        self._changed = True

    def on_trial_remove(self, tune_controller, trial) -> None:
        super().on_trial_remove(tune_controller, trial)
        self._changed = True

    def choose_trial_to_run(self, tune_controller):
        # Ray 2.60 hands schedulers a wrapper that hides checkpoint(); the controller is behind it.
        controller = getattr(tune_controller, "_tune_controller", tune_controller)
        if self._changed or self.run.handing_over:
            self._changed = False
            controller.checkpoint(force=True)
        if self.run.handing_over:
            raise HandedOver(str(self.job_id))
        return super().choose_trial_to_run(tune_controller)


class _RecordsEarlyStops(_ActsForAJob):
    """Puts the scheduler's decisions on the log: for ASHA each trial reaching a rung, continued
    or stopped, with the cutoff and the results it was compared against; for HyperBand each
    early stop. Writes why it stopped a trial before its end, for the trial's TrialUpdated."""

    # Rung results written into a decision at most: the nearest to the cutoff (a 1000-trial job
    # would otherwise put a million values on the log).
    MAX_COMPARED = 100

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        rungs = getattr(getattr(self, "_trial_info", {}).get(trial.trial_id), "_rungs", ())  # ASHA's _Bracket
        before = {milestone: dict(recorded) for milestone, recorded in rungs}
        decision = super().on_trial_result(tune_controller, trial, result)
        at = result.get(TIME_ATTR, 0)
        max_t = getattr(self, "_max_t", None) or self._max_t_attr  # ASHA / HyperBand
        early_stop = decision == TrialScheduler.STOP and at < max_t
        rung = next((m for m, recorded in rungs if trial.trial_id in recorded and trial.trial_id not in before[m]), None)
        if rung is not None:
            self._decide_at_rung(trial, at, rung, before[rung], result[self._metric], early_stop, rungs)
        elif early_stop:
            summary = f"{type(self).__name__} stopped it at iteration {at}: {self._metric}={result.get(self._metric)}"
            self.run.decide("rung", type(self).__name__, "stop", summary, trial.trial_id,
                            iteration=at, metric=self._metric, value=result.get(self._metric))
            self.run.scheduler_stops[trial.trial_id] = summary
        return decision

    def _decide_at_rung(self, trial, at: int, rung, others: dict, value: float, stop: bool, rungs) -> None:
        bracket = self._trial_info[trial.trial_id]
        op, name, scheduler = self._metric_op, self._metric, type(self).__name__
        cutoff = bracket.cutoff(others)
        cutoff = None if cutoff is None else float(op * cutoff)
        compared = sorted(((tid, float(op * v)) for tid, v in others.items()),
                          key=lambda item: abs(item[1] - cutoff) if cutoff is not None else 0)[:self.MAX_COMPARED]
        where = f"at iteration {at} (rung {rung:g})"
        if stop:
            summary = (f"{scheduler} stopped it {where}: {name}={value:.4g}, worse than the cutoff {cutoff:.4g} "
                       f"(the best 1/{bracket.rf:g} of the {len(others)} trial(s) before it at this rung)")
            self.run.scheduler_stops[trial.trial_id] = summary
        elif cutoff is None:
            summary = f"{scheduler} let it continue {where}: {name}={value:.4g}, the first result at this rung"
        else:
            summary = (f"{scheduler} let it continue {where}: {name}={value:.4g}, within the cutoff {cutoff:.4g} "
                       f"(the best 1/{bracket.rf:g} of the {len(others)} trial(s) before it at this rung)")
        self.run.decide("rung", scheduler, "stop" if stop else "continue", summary, trial.trial_id,
                        rung=float(rung), iteration=at, metric=name, mode=self._mode, value=float(value), cutoff=cutoff,
                        reduction_factor=float(bracket.rf), compared_count=len(others), compared=dict(compared),
                        rungs=[float(m) for m, _ in rungs])


class FIFO(_EnforcesTrialLeases, _SavesStateOnTrialChanges, FIFOScheduler):
    pass


class ASHA(_EnforcesTrialLeases, _SavesStateOnTrialChanges, _RecordsEarlyStops, ASHAScheduler):
    pass


class HyperBand(_EnforcesTrialLeases, _SavesStateOnTrialChanges, _RecordsEarlyStops, HyperBandScheduler):
    pass


class PBT(_EnforcesTrialLeases, _SavesStateOnTrialChanges, PopulationBasedTraining):
    """Population Based Training that writes down each exploit (which trial's checkpoint this
    one continues from, and its new hyperparameters) for the trial's next TrialUpdated."""

    def _exploit(self, tune_controller, trial, trial_to_clone):
        old = {k: json_scalar(trial.config[k]) for k in self._hyperparam_mutations if k in trial.config}
        own, donor = self._trial_state[trial], self._trial_state[trial_to_clone]
        super()._exploit(tune_controller, trial, trial_to_clone)
        pinned = self._pin_cloned_checkpoint(trial)
        searched = {k: json_scalar(trial.config[k]) for k in self._hyperparam_mutations if k in trial.config}
        self.run.scheduler_notes[trial.trial_id] = (
            f"PBT: continues from trial {trial_to_clone.trial_id}'s checkpoint at iteration "
            f"{donor.last_train_time} with {searched}"
        )
        source = {k: json_scalar(trial_to_clone.config[k]) for k in searched if k in trial_to_clone.config}
        changes = ", ".join(f"{k} {source.get(k)} -> {v}" for k, v in searched.items())  # PBT perturbs the source's
        self.run.decide(
            "exploit", "PBT", "exploit",
            f"PBT replaced it with trial {trial_to_clone.trial_id}'s checkpoint at iteration {donor.last_train_time} "
            f"({self._metric}={_number(donor.last_score, self._metric_op)} against its "
            f"{_number(own.last_score, self._metric_op)}, in the worst {self._quantile_fraction:.0%}) and explored "
            f"{changes}", trial.trial_id,
            source_trial=trial_to_clone.trial_id, checkpoint=pinned, iteration=json_scalar(own.last_train_time),
            source_iteration=json_scalar(donor.last_train_time), metric=self._metric,
            score=_number(own.last_score, self._metric_op), source_score=_number(donor.last_score, self._metric_op),
            quantile_fraction=self._quantile_fraction, old=old, source_params=source, new=searched)

    @staticmethod
    def _pin_cloned_checkpoint(trial) -> str | None:
        """Copy the donor's checkpoint into the exploited trial's own folder now. Ray resumes
        the trial from the donor's checkpoint only when it runs again; a trial waiting for a
        free slot meanwhile saw the donor report on and Ray delete that checkpoint
        (num_to_keep), and failed to restore (seen in make test)."""
        manager = trial.run_metadata.checkpoint_manager
        cloned = manager._latest_checkpoint_result
        path = getattr(getattr(cloned, "checkpoint", None), "path", None)
        if path is None or not Path(path).is_dir():
            return path
        pinned = Path(trial.path) / "pbt_clone"
        staging = pinned.with_name("pbt_clone.staging")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(path, staging)
        shutil.rmtree(pinned, ignore_errors=True)
        staging.rename(pinned)
        manager._latest_checkpoint_result = _TrainingResult(
            checkpoint=Checkpoint(path=str(pinned), filesystem=cloned.checkpoint.filesystem), metrics=cloned.metrics)
        return str(pinned)


def _number(score, op: float) -> float | None:
    """A score as the trial reported it (PBT keeps them signed for maximising)."""
    return None if score is None else float(op * score)
