"""The job's baseline, evaluated beside its trials: the untuned base model scored once on the eval
split (training/baseline.py) in a Ray task, published as BaselineEvaluated when it ends.

It runs at most once per job: the tuner's state says whether a BaselineEvaluated is on the log
already (a restored or extended job has one). A task stopped because the job was cancelled or
handed over publishes nothing; the next owner evaluates again.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import ray
import structlog
from ray.exceptions import TaskCancelledError

from producers.error_text import one_line
from producers.job_run import SOURCE, JobRun
from schemas import events as ev
from schemas.artifact_layout import baseline_folder
from training.baseline import has_baseline
from training.folders import Folders
from training.hyperparams import Hyperparameters

log = structlog.get_logger()


def _evaluate(dataset_key: str, model_id: str, folders: Folders, out_dir: str, max_seq_length: int) -> dict:
    from training.baseline import evaluate_baseline

    result = evaluate_baseline(dataset_key, model_id, folders=folders, out_dir=Path(out_dir),
                               max_seq_length=max_seq_length)
    return {"metrics": {k: v for k, v in result.metrics.items() if v is not None and math.isfinite(v)},
            "dataset_hash": result.dataset["content_hash"], "eval_size": result.dataset["eval_size"],
            "seconds": round(result.seconds, 3)}


class BaselineTask:
    """One job's baseline evaluation, from `start` to `finish` (which waits for its event)."""

    def __init__(self, run: JobRun, job_folder: Path, folders: Folders):
        self.run, self.folder, self.folders = run, baseline_folder(job_folder), folders
        self._ref: ray.ObjectRef | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        spec = self.run.spec
        if self.run.baseline_done or not has_baseline(spec.base_model_id, self.folders):
            return
        max_seq_length = int(spec.fixed_params.get("max_seq_length", Hyperparameters.max_seq_length))
        resources = spec.resources_per_trial
        task = ray.remote(_evaluate).options(num_cpus=resources.cpu, num_gpus=resources.gpu, max_retries=1)
        self._ref = task.remote(spec.dataset_key, spec.base_model_id, self.folders.resolved(), str(self.folder.resolve()),
                                max_seq_length)
        self._thread = threading.Thread(target=self._publish_when_done, name=f"baseline-{self.run.job_id}", daemon=True)
        self._thread.start()

    def _publish_when_done(self) -> None:
        try:
            payload = ev.BaselineEvaluatedPayload(path=str(self.folder), **ray.get(self._ref))
        except TaskCancelledError:
            return
        except Exception as exc:  # the baseline failed; the job goes on without one
            payload = ev.BaselineEvaluatedPayload(path=str(self.folder), error=one_line(exc, self.run.job_id))
        try:
            self.run.publish(ev.BaselineEvaluated(job_id=self.run.job_id, source=SOURCE, payload=payload))
        except Exception:  # not on the log: the job's next owner evaluates it again
            log.exception("could not publish the baseline", job_id=str(self.run.job_id))

    def finish(self) -> None:
        """Wait for the baseline's event, or stop the task when the job stopped early."""
        if self._thread is None:
            return
        if self.run.cancelled or self.run.handing_over:
            ray.cancel(self._ref, force=True)
        self._thread.join()
