"""The function each Ray Tune trial runs: the run pipeline, reporting through Ray.

Every intermediate report (step, train_loss, eval_loss) becomes a Ray result with the
training checkpoint of that step, so schedulers see the trial progress, PBT can copy a
trial's state into another, and a restored experiment continues an interrupted trial from
its last checkpoint. The last result carries the evaluation metrics and the run's lineage.
The run folder and the training state sit in the job's folder (schemas/artifact_layout.py),
not in Ray's per-trial working directory, which Ray keeps in its temp folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import ray
from ray import tune
from ray.train._internal.session import get_session  # its stop event: Tune stopped the trial

from schemas.artifact_layout import trial_run_folder, trial_train_state
from training.artifacts import read_manifest
from training.folders import Folders
from training.run import run_pipeline
from training.warm import process_worker


def _fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def train_trial(
    config: dict, job_folder: str, dataset_key: str, model_id: str, intermediate_scores: bool, folders: Folders,
    gpus: float = 0,
) -> None:
    trial = _TrialFolders(job_folder)
    if trial.finished():
        return
    result = run_pipeline(
        dataset_key, model_id, config, folders=folders, run_dir=trial.run_folder, report=trial.report,
        run_id=trial.run_id, checkpoint_dir=trial.train_state, gpus=gpus,
        # Ray Tune hands this process the next trial that needs the same resources (reuse_actors):
        # its warm worker keeps the base model, adapters and compiled programs for it.
        worker=process_worker(),
        intermediate_scores=intermediate_scores,
    )
    trial.conclude(result.run_dir)


def packed_trial(config: dict, job_folder: str, pack: str, slots: int) -> None:
    """A trial of a packed job: its slot in the job's pack actor (consumers/tuner/pack_actor.py)
    trains it; this relays the slot's reports and checkpoints to Ray Tune. When Tune stops or
    pauses the trial (a scheduler, PBT's exploit, the job's end), it gives the slot up at once."""
    trial = _TrialFolders(job_folder, {"pack_slots": slots})
    if trial.finished():
        return
    actor = ray.get_actor(pack)
    joined = _unless_stopped(actor.join.remote(trial.trial_id, config, str(trial.run_folder), trial.run_id,
                                               str(trial.train_state), trial.restored))
    if joined is None:
        actor.leave.remote(trial.trial_id)
        return
    generation, slot = joined
    trial.extra["pack_slot"] = slot  # which trials share the pack at once: jobs watch, the dashboard
    try:
        while (records := _unless_stopped(actor.advance.remote(trial.trial_id, generation))) is not None:
            for record in records:
                if record.get("final"):
                    trial.conclude(Path(record["run_dir"]))
                    return
                trial.report(record)
    finally:
        actor.leave.remote(trial.trial_id, generation)


def _unless_stopped(call: ray.ObjectRef, poll_s: float = 0.5):
    """The call's result; None as soon as Tune stops this trial (its session's stop event: the
    trainable's thread would otherwise learn it only at its next report)."""
    stopping = get_session().stop_event
    while not (ready := ray.wait([call], timeout=poll_s)[0]):
        if stopping.is_set():
            return None  # (the caller then leaves: a join still waiting is dropped, a slot freed)
    return ray.get(ready[0])


class _TrialFolders:
    """A trial's run folder and training state in the job's folder, and its reports to Ray."""

    def __init__(self, job_folder: str, extra: dict | None = None):
        context = tune.get_context()
        self.trial_id = context.get_trial_id()
        self.node = ray.get_runtime_context().get_node_id()  # which Ray node ran each report
        self.extra = extra or {}
        self.run_id = f"{context.get_experiment_name()}-{self.trial_id}"
        self.run_folder = trial_run_folder(job_folder, self.trial_id)
        self.train_state = trial_train_state(job_folder, self.trial_id)
        self.staging = self.train_state.with_name(f"{self.trial_id}.staging")
        self.restored = False

    def finished(self) -> bool:
        """Whether the trial finished before the tuner was killed, after Ray last saved the
        experiment (then its final result is reported again, rather than trained again); else
        its training state is made ready: filled from Ray's checkpoint when the trial restarts
        (restored experiment, PBT exploit), else empty."""
        if (self.run_folder / "manifest.json").exists():
            self._report_final(read_manifest(self.run_folder), self.run_folder)
            return True
        _fresh_dir(self.train_state)
        if (restored := tune.get_checkpoint()) is not None:
            with restored.as_directory() as saved:
                shutil.copytree(saved, self.train_state, dirs_exist_ok=True)
            self.restored = True
        return False

    def report(self, record: dict) -> None:
        metrics = {**{k: v for k, v in record.items() if v is not None}, "node_id": self.node, **self.extra}
        step_dir = self.train_state / str(record["step"])
        if not step_dir.is_dir():
            tune.report(metrics)
            return
        # Ray copies the checkpoint folder now; the trainer replaces its step folder later.
        shutil.copytree(step_dir, _fresh_dir(self.staging) / step_dir.name)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(self.staging))

    def conclude(self, run_dir: Path) -> None:
        # Training is over: Ray keeps the checkpoints it needs, the run folder holds the model.
        shutil.rmtree(self.train_state, ignore_errors=True)
        shutil.rmtree(self.staging, ignore_errors=True)
        self._report_final(read_manifest(run_dir), run_dir)

    def _report_final(self, manifest: dict, run_dir: Path) -> None:
        """The trial's last result: its evaluation, the run's lineage, its compile time and which
        of its worker's trials it was (after the first, the worker was warm)."""
        tune.report({**manifest["metrics"], "run_id": manifest["run_id"], "run_dir": str(run_dir),
                     "compile_s": manifest["timings"]["compile_s"], "worker_trial": manifest.get("worker_trial", 1),
                     "node_id": self.node,
                     # (a packed trial that finished before the tuner was killed: its slot from its manifest)
                     **({"pack_slot": manifest["pack"]["slot"]} if "pack" in manifest else {}), **self.extra})
