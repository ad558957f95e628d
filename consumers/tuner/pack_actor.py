"""One job's pack as a Ray actor: K slots of one compiled program (training/pack_run.py), on the
resources one unpacked trial would reserve.

Ray Tune has no trial packing, so every trial of a packed job is still a Tune trial (its own
id, reports, checkpoints, scheduler decisions, retries), run by a light function trainable
(consumers/tuner/trainable.packed_trial) that claims a slot here (`join`), asks for its next
report (`advance`) and relays it to Tune. One thread steps every slot whose trial waits for a
report; the others wait unchanged in the compiled step. A slot is freed when its trial ends,
is stopped by a scheduler (`PackSlots`, on Tune's driver) or starts again (a retry, a PBT
exploit: `join` again, from the checkpoint Tune hands it).
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import ray
from ray.tune import Callback

from training.folders import Folders
from training.warm import process_worker

if TYPE_CHECKING:
    from training.pack_run import PackedRuns


def pack_name(job_id) -> str:
    return f"tunix-pack-{job_id}"


@dataclass
class _Request:
    kind: str  # join | want | leave
    trial: str
    generation: int | None = None
    join: dict = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None
    slot: int | None = None


class PackActor:
    """Threaded: `join` and `advance` block their caller, the stepping thread never blocks on them."""

    def __init__(self, make_runs: Callable[[], PackedRuns]):
        """make_runs: the job's PackedRuns, built on the stepping thread (JAX loads there)."""
        self._make_runs = make_runs
        self._cond = threading.Condition()
        self._requests: deque[_Request] = deque()
        self._generation: dict[str, int] = {}  # trial -> its latest join
        # trial -> (the generation that asked, what its waiting `advance` gets): a step under way
        # when the trial joined again ends with records for the generation before
        self._records: dict[str, tuple[int | None, list | Exception]] = {}
        self._asking: dict[str, int] = {}  # trial -> the generation whose `want` the pack serves
        self._broken: Exception | None = None
        threading.Thread(target=self._loop, name="pack", daemon=True).start()

    # What the trials' trainables call (each on its own actor thread).

    def join(self, trial: str, values: dict, run_dir: str, run_id: str, checkpoint_dir: str,
             restored: bool) -> tuple[int, int]:
        """Claim a slot for `trial` (waits for a free one): (its generation, for `advance`; the slot)."""
        with self._cond:  # (one hold: requests queue in the order of their generations)
            generation = self._generation[trial] = self._generation.get(trial, 0) + 1
            self._records.pop(trial, None)
            request = _Request("join", trial, generation, dict(values=values, run_dir=Path(run_dir), run_id=run_id,
                                                               checkpoint_dir=Path(checkpoint_dir), restored=restored))
            self._submit(request)
        request.done.wait()
        if request.error is not None:
            raise request.error
        return generation, request.slot

    def advance(self, trial: str, generation: int) -> list[dict] | None:
        """The trial's records up to its next report (the last step's, then `final`); None when
        its slot was given up (a scheduler stopped it, or it joined again elsewhere)."""
        self._submit(_Request("want", trial, generation))
        with self._cond:
            while (self._records.get(trial, (None,))[0] != generation and self._generation.get(trial) == generation
                   and self._broken is None):
                self._cond.wait()
            if self._broken is not None:
                raise self._broken
            if self._generation.get(trial) != generation:
                return None
            _, records = self._records.pop(trial)
        if isinstance(records, Exception):
            raise records
        return records

    def leave(self, trial: str, generation: int | None = None) -> None:
        """Free the trial's slot; with a generation, only if no later join replaced it."""
        with self._cond:
            if generation is not None and self._generation.get(trial) != generation:
                return
            self._generation[trial] = self._generation.get(trial, 0) + 1  # wakes its `advance`: None
            self._submit(_Request("leave", trial))

    # The stepping thread.

    def _submit(self, request: _Request) -> None:
        with self._cond:  # (an RLock: join and leave call it holding it)
            if self._broken is not None:
                request.error = self._broken
                request.done.set()
                return
            self._requests.append(request)
            self._cond.notify_all()

    def _loop(self) -> None:
        try:
            runs = self._make_runs()
        except Exception as error:  # noqa: BLE001 (every trial's advance raises it)
            self._break(error)
            return
        waiting: list[_Request] = []  # joins with no free slot yet, oldest first
        while True:
            with self._cond:  # sleep while nothing is asked and no slot wants a step
                while not self._requests and not any(r.wants for r in runs.runs.values()):
                    self._cond.wait()
                requests, self._requests = list(self._requests), deque()
            # Leaves first (they make room), then the joins that waited longest.
            for request in [r for r in requests if r.kind != "join"] + waiting + [r for r in requests if r.kind == "join"]:
                self._handle(runs, request)
            waiting = [r for r in waiting + requests if r.kind == "join" and not r.done.is_set()]
            try:
                reached = runs.step()
            except Exception as error:  # noqa: BLE001 (a pack that cannot step fails every trial in it)
                self._break(error)
                return
            with self._cond:
                self._records.update({trial: (self._asking.get(trial), records) for trial, records in reached.items()})
                self._cond.notify_all()

    def _handle(self, runs, request: _Request) -> None:
        with self._cond:
            current = self._generation.get(request.trial) == request.generation
        if request.kind == "leave":
            runs.leave(request.trial)
        elif request.kind == "want" and current and request.trial in runs.runs:
            with self._cond:
                self._asking[request.trial] = request.generation
            runs.want(request.trial)
        elif request.kind == "join":
            if not current:
                request.done.set()  # replaced by a later join before it got a slot
                return
            if not runs.has_room(request.trial):
                return  # stays waiting
            try:
                request.slot = runs.start(request.trial, **request.join).slot
            except Exception as error:  # noqa: BLE001 (the trial fails, the pack goes on)
                request.error = error
            request.done.set()

    def _break(self, error: Exception) -> None:
        with self._cond:
            self._broken = error
            self._cond.notify_all()
            for request in self._requests:
                request.error = error
                request.done.set()


def packed_runs(*, dataset_key: str, model_id: str, folders: Folders, slots: int, rank: int, targets: str,
                seed: int, intermediate_scores: bool, gpus: float = 0) -> PackedRuns:
    """The job's pack and its trials' runs, in the pack actor's process (with its warm worker)."""
    from training.pack_run import PackedRuns  # JAX loads in the actor, not in the tuner

    return PackedRuns(dataset_key, model_id, folders=folders, slots=slots, rank=rank, targets=targets, seed=seed,
                      intermediate_scores=intermediate_scores, gpus=gpus, worker=process_worker())


def start_pack(job_id, resources, slots: int, **inputs):
    """The job's pack actor, on the resources of one unpacked trial (a leftover one of the same
    job, from a run of the experiment that was handed over, is replaced)."""
    stop_pack(job_id)
    actor = ray.remote(PackActor).options(
        name=pack_name(job_id), num_cpus=resources.cpu, num_gpus=resources.gpu, resources=dict(resources.custom),
        # every trial's join and advance block a thread of their own
        max_concurrency=4 * slots + 8, max_restarts=0)
    return actor.remote(functools.partial(packed_runs, slots=slots, **inputs))


def stop_pack(job_id) -> None:
    try:
        ray.kill(ray.get_actor(pack_name(job_id)))
    except ValueError:
        pass  # none running


class PackSlots(Callback):
    """Frees a trial's slot as soon as it ends on Tune's driver: stopped by a scheduler or the
    job, failed, or done (its trainable may be blocked in `advance` when it is stopped)."""

    def __init__(self, job_id):
        self.job_id = job_id

    def _leave(self, trial) -> None:
        try:
            ray.get_actor(pack_name(self.job_id)).leave.remote(trial.trial_id)
        except ValueError:
            pass  # the pack is gone: the experiment is ending

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._leave(trial)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._leave(trial)
