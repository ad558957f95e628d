"""Search algorithms a job can steer while they run: how many trials, how many at once.

Ray fixes num_samples and max_concurrent_trials when an experiment starts (and ignores spec
changes on restore). These wrap Ray's two search algorithms so both limits are read from the
job's JobRun at every step instead: Ray is told to expect an unbounded number of trials, and
the wrapper creates a trial only while fewer than the job's planned trials exist and fewer
than its max_concurrent_trials (or its pack's slots, when fewer) are live; it reports the
search finished once the planned trials exist. A JobAdjusted (consumers/tuner/service.py) or a
JobExtended (the restored experiment reads the larger count) therefore takes effect at Ray's
next step, and no running trial is touched. Trials already live above a lowered concurrency run to their end.

Random and grid search skip configurations a parent job already tried (warm start): the
seeds' searched values are remembered and a suggestion equal to one is discarded.

Every suggestion goes on the log as a DecisionMade, with the algorithm, its seed and the
results fed to the searcher since the previous suggestion, in the order it got them: what
`tunix-tune audit verify` needs to run the same searcher again and compare.
"""

from __future__ import annotations

from ray.tune.search import SearchGenerator
from ray.tune.search.basic_variant import BasicVariantGenerator

from producers.job_run import JobRun
from schemas.values import json_scalar

# What Ray is told num_samples is: the wrapper, not Ray, decides when the search is done.
UNBOUNDED_SAMPLES = 1_000_000
# Discarded suggestions in a row after which a random or grid search counts as exhausted.
MAX_SKIPS = 1000


def _key(config: dict, names: tuple[str, ...]) -> tuple:
    return tuple((name, config.get(name)) for name in names)


class _Steered:
    """Mixin over a Ray SearchAlgorithm; its state travels with Ray's searcher checkpoint."""

    def _steer(self, job_id, searched: tuple[str, ...], tried: list[dict], algorithm: str, seed: int | None) -> None:
        self.job_id = job_id
        self._algorithm, self._seed = algorithm, seed
        self._fed: list[list] = []  # [trial_id, iteration] results, [trial_id, None] ends, since the last suggestion
        self._seen = 0  # trials ended so far
        self._searched = searched
        self._tried = {_key(config, searched) for config in tried}  # parents' configurations
        self._created = 0
        self._live: set[str] = set()
        self._halted_at: int | None = None  # planned trials when Ray halted the search

    def _planned(self) -> int | None:
        run = JobRun.find(self.job_id)
        if run is None:
            return None
        grid = run.spec.grid_points()
        if self._tried and set(grid.names) == set(self._searched):  # a pure grid: parents' points are done
            # Each tried configuration removes the grid points equal to it: O(tried), never a
            # walk over the grid, as this runs at every step of Ray's loop.
            done = sum(grid.multiplicity(dict(key)) for key in self._tried)
            return run.spec.num_samples * (grid.count - done)
        return run.spec.planned_trials()

    def next_trial(self):
        run = JobRun.find(self.job_id)
        if run is None or self.is_finished() or len(self._live) >= run.most_at_once:
            return None
        for _ in range(MAX_SKIPS):
            trial = super().next_trial()
            if trial is None:
                return None
            if self._tried and _key(trial.config, self._searched) in self._tried:
                super().on_trial_complete(trial.trial_id)  # a parent tried it: never run
                continue
            self._created += 1
            self._live.add(trial.trial_id)
            self._record_suggestion(run, trial)
            return trial
        self.set_finished()  # every suggestion was tried before: the space is exhausted
        return None

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        self._live.discard(trial_id)
        self._fed.append([trial_id, None])
        self._seen += 1
        super().on_trial_complete(trial_id, result=result, error=error)

    def _record_suggestion(self, run: JobRun, trial) -> None:
        config = {name: json_scalar(trial.config.get(name)) for name in self._searched}
        fed, self._fed = self._fed, []
        uses = "" if self._algorithm == "tpe" else " (it does not use results)"
        shown = ", ".join(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
                          for name, value in config.items())
        run.decide("suggestion", self._algorithm, "suggest",
                   f"{self._algorithm} (seed {self._seed}) suggested {shown} after {self._seen} ended trial(s){uses}",
                   trial.trial_id, algorithm=self._algorithm, seed=self._seed, suggestion=self._created,
                   ended_seen=self._seen, fed=fed, config=config)

    def set_finished(self) -> None:
        self._halted_at = self._planned()
        super().set_finished()

    def is_finished(self) -> bool:
        planned = self._planned()
        if planned is None:
            return super().is_finished()
        if self._halted_at is not None and planned > self._halted_at:
            # Halted when the job completed, then extended: the search goes on.
            self._halted_at, self._finished = None, False
        return self._created >= planned or super().is_finished()


class SteeredVariants(_Steered, BasicVariantGenerator):
    """Random and grid search (Ray's BasicVariantGenerator; its state is its __dict__)."""

    def __init__(self, job_id, searched: tuple[str, ...], tried: list[dict], algorithm: str, random_state=None):
        super().__init__(random_state=random_state)
        self._steer(job_id, searched, tried, algorithm, random_state)


class SteeredSearch(_Steered, SearchGenerator):
    """A Ray Searcher (TPE) without Ray's ConcurrencyLimiter: the job's limit applies instead."""

    def __init__(self, job_id, searched: tuple[str, ...], searcher, seed: int):
        super().__init__(searcher)
        self._steer(job_id, searched, [], "tpe", seed)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.searcher.metric in result:  # what TPE takes in (see service.search.searchers.TPE)
            self._fed.append([trial_id, result.get("training_iteration")])
        super().on_trial_result(trial_id, result)

    _STEER_STATE = ("_created", "_live", "_halted_at", "_tried", "_searched", "job_id", "_algorithm", "_seed",
                    "_fed", "_seen")

    def get_state(self) -> dict:
        return {**super().get_state(), **{name: getattr(self, name) for name in self._STEER_STATE}}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        for name in self._STEER_STATE:
            if name in state:
                setattr(self, name, state[name])
