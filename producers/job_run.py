"""One running job's state, shared by the tuner and the Ray objects acting for the job.

Ray pickles the callback, the stopper and the scheduler with the experiment (to restore it
after a crash), so they cannot hold a reference to this object: they keep the job id and look
the JobRun up here. The registry has a lifetime: `JobRun.open` registers the job's run and
removes it when the experiment ends, in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar
from uuid import UUID

from schemas import events as ev
from schemas.job_spec import JobSpec

Publish = Callable[[ev.Event], None]  # blocks until Kafka acknowledged the event
CANCELLED = "job cancelled"
BUDGET_SPENT = "time budget spent"
CPU_BUDGET_SPENT = "cpu_s budget spent"
GPU_BUDGET_SPENT = "gpu_s budget spent"
_BUDGETS = (BUDGET_SPENT, CPU_BUDGET_SPENT, GPU_BUDGET_SPENT)
SOURCE = "tunix-tune.tuner"  # the `source` of every event the tuner publishes


@dataclass
class JobRun:
    job_id: UUID
    publish: Publish
    # The job's spec as adjusted so far (JobAdjusted): the steered searcher, the stopper and the
    # outcome read their limits here at every step.
    spec: JobSpec
    # Trials whose terminal TrialUpdated is on the log already: a resumed experiment sends them no more.
    ended_on_log: frozenset[str] = frozenset()
    # Why every trial of the job is being stopped (e.g. cancelled); None while it runs on.
    stop_reason: str | None = None
    # trial_id -> why the scheduler stopped it early (ASHA/HyperBand), for its terminal event.
    scheduler_stops: dict[str, str] = field(default_factory=dict)
    # trial_id -> what the scheduler changed in it (a PBT exploit), for its next event.
    scheduler_notes: dict[str, str] = field(default_factory=dict)
    # time.monotonic() when the job's time budget was last zero (earlier owners' spending
    # counted in): it runs out at budget_origin + spec.time_budget_s.
    budget_origin: float = 0.0
    # trial_id -> (cpu_s, gpu_s) reserved so far: the cost ledger, from the log and each report.
    costs: dict[str, tuple[float, float]] = field(default_factory=dict)
    # Set when the job moves to another tuner: the experiment stops where it is, resumable.
    handing_over: bool = False
    # Trials whose latest TrialUpdated says running: preempted if the job is handed over.
    running_trials: set[str] = field(default_factory=set)
    # trial_id -> when it last started or reported (time.monotonic()): its lease.
    renewed: dict[str, float] = field(default_factory=dict)
    # A BaselineEvaluated of the job is on the log: it is not evaluated again.
    baseline_done: bool = False
    # The slots of the job's pack when its trials run packed: no more trials than that at once.
    pack_slots: int | None = None

    _running: ClassVar[dict[UUID, "JobRun"]] = {}

    @classmethod
    @contextmanager
    def open(cls, job_id: UUID, publish: Publish, spec: JobSpec, ended_on_log: frozenset[str] = frozenset(),
             budget_origin: float = 0.0, costs: dict | None = None, baseline_done: bool = False) -> Iterator["JobRun"]:
        run = cls(job_id, publish, spec, ended_on_log, budget_origin=budget_origin, costs=dict(costs or {}),
                  baseline_done=baseline_done)
        cls._running[job_id] = run
        try:
            yield run
        finally:
            cls._running.pop(job_id, None)

    @property
    def most_at_once(self) -> int:
        """How many trials may be live at once: max_concurrent_trials, or the pack's slots when
        fewer (a trial beyond them would only wait for a slot, its lease not running)."""
        return min(self.spec.max_concurrent_trials, self.pack_slots or self.spec.max_concurrent_trials)

    @classmethod
    def of(cls, job_id: UUID) -> "JobRun":
        return cls._running[job_id]

    @classmethod
    def find(cls, job_id: UUID) -> "JobRun | None":
        return cls._running.get(job_id)

    def cancel(self) -> None:
        """Stop the job's trials at their next report, and every pending one."""
        self.stop_reason = CANCELLED

    def hand_over(self) -> None:
        """Stop the experiment at its next step without ending any trial: the job's next
        owner restores it from its folder (see consumers/tuner/schedulers.py)."""
        self.handing_over = True

    def decide(self, kind: str, decider: str, outcome: str, summary: str, trial_id: str | None = None,
               **inputs) -> None:
        """Put one decision on the log (a DecisionMade), with the inputs it was made from."""
        self.publish(ev.DecisionMade(job_id=self.job_id, source=SOURCE, payload=ev.DecisionMadePayload(
            kind=kind, decider=decider, outcome=outcome, trial_id=trial_id, summary=summary, inputs=inputs)))

    def out_of_budget(self, now: float) -> bool:
        """Whether a budget (time, cpu_s, gpu_s) is spent; the first one spent is the stop
        reason, and the decision to stop the job goes on the log."""
        if self.stop_reason is None:
            budget, (cpu_s, gpu_s) = self.spec.budget, self.spent()
            time_s = now - self.budget_origin
            spent = {"time_s": round(time_s, 3), "cpu_s": round(cpu_s, 3), "gpu_s": round(gpu_s, 3)}
            limits = {"time_s": self.spec.time_budget_s, "cpu_s": budget and budget.cpu_s,
                      "gpu_s": budget and budget.gpu_s}
            for (name, limit), reason in zip(limits.items(), _BUDGETS, strict=True):
                if limit is not None and spent[name] >= limit:
                    self.stop_reason = reason
                    running = sorted(self.running_trials)
                    self.decide("budget", "tuner", "stop_job", f"the tuner stopped the job: {spent[name]:g} {name} "
                                f"spent of a budget of {limit:g}; {len(running)} running trial(s) stopped",
                                budget=name, limit=limit, spent=spent, running=running)
                    break
        return self.stop_reason in _BUDGETS

    def spent(self) -> tuple[float, float]:
        """CPU- and GPU-seconds reserved by all the job's trials so far."""
        return sum(c for c, _ in self.costs.values()), sum(g for _, g in self.costs.values())

    @property
    def cancelled(self) -> bool:
        return self.stop_reason == CANCELLED
