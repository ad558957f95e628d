"""`tunix-tune audit what-if`: replay another scheduler over a finished job's recorded learning
curves. Each trial's reports are fed in the order they occurred, to Ray's own ASHA bracket,
which says at every rung whether the trial would have gone on; a trial it stops gives back the
trial-seconds it ran after that report. The suggestions stay the ones the job made: a real
ASHA run would also have freed slots earlier and changed what a searcher saw next.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ray.tune.schedulers import TrialScheduler
from ray.tune.schedulers.async_hyperband import _Bracket

from schemas.api import JobOut, TrialHistory


@dataclass(frozen=True)
class AshaOptions:
    grace_period: int = 1
    reduction_factor: float = 2
    max_t: int | None = None  # default: the most reports any trial made


@dataclass
class WouldStop:
    trial_id: str
    iteration: int
    rung: float
    value: float
    cutoff: float
    seconds_saved: float


@dataclass
class WhatIf:
    scheduler: str
    metric: str
    mode: str
    options: AshaOptions
    trials: int
    trial_s: float  # what the trials ran
    stopped: list[WouldStop] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def seconds_saved(self) -> float:
        return round(sum(s.seconds_saved for s in self.stopped), 3)

    @property
    def saved_fraction(self) -> float:
        return round(self.seconds_saved / self.trial_s, 4) if self.trial_s else 0.0


class _Trial:  # what the bracket needs of a trial
    def __init__(self, trial_id: str):
        self.trial_id = trial_id


def curve_metric(job: JobOut, history: list[TrialHistory]) -> tuple[str, str]:
    """The job's metric when trials report it along the way, else eval_loss (lower is better):
    a score computed only at a trial's end gives ASHA nothing to compare at its rungs."""
    along = sum(1 for h in history for p in h.points if job.metric_name in p.metrics)
    if along > len(history) or not any("eval_loss" in p.metrics for h in history for p in h.points):
        return job.metric_name, job.metric_mode
    return "eval_loss", "min"


def what_if_asha(job: JobOut, history: list[TrialHistory], options: AshaOptions = AshaOptions(),
                 metric: str | None = None, mode: str | None = None) -> WhatIf:
    if metric is None:
        metric, mode = curve_metric(job, history)
    mode = mode or job.metric_mode
    trials = {t.trial_id: t for t in job.trials}
    ran = {tid: (t.finished_at - t.started_at).total_seconds() for tid, t in trials.items()
           if t.started_at is not None and t.finished_at is not None}
    points = sorted(((p.occurred_at, h.trial_id, p.iteration, p.metrics[metric]) for h in history
                     for p in h.points if metric in p.metrics and p.iteration is not None and h.trial_id in ran))
    max_t = options.max_t or max((it for _, _, it, _ in points), default=1)
    found = WhatIf("asha", metric, mode, AshaOptions(options.grace_period, options.reduction_factor, max_t),
                   len(ran), round(sum(ran.values()), 3))
    if job.status in ("running", "cancelling", "created"):
        found.notes.append(f"the job is {job.status}: only the curves recorded so far are replayed")
    if not points:
        found.notes.append(f"no trial reported {metric} with an iteration: nothing to replay")
        return found
    op = 1.0 if mode == "max" else -1.0
    bracket = _Bracket(options.grace_period, max_t, options.reduction_factor, s=0)
    stopped: set[str] = set()
    for at, trial_id, iteration, value in points:
        if trial_id in stopped or iteration >= max_t:
            continue
        before = {m: dict(r) for m, r in bracket._rungs}
        if bracket.on_result(_Trial(trial_id), iteration, op * value) != TrialScheduler.STOP:
            continue
        rung = next(m for m, r in bracket._rungs if trial_id in r and trial_id not in before[m])
        stopped.add(trial_id)
        finished = trials[trial_id].finished_at
        found.stopped.append(WouldStop(trial_id, iteration, float(rung), float(value),
                                       float(op * bracket.cutoff(before[rung])),
                                       round(max(0.0, (finished - at).total_seconds()), 3)))
    best = job.best_trial_id
    if best in stopped:
        found.notes.append(f"it would have stopped the job's best trial {best}")
    return found
