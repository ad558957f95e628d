"""Promote a trial's model into the registry: artifacts/models/{name}/{version}/.

The trial's run folder (manifest with dataset, base model, hyperparameters, metrics, package
versions and git commit; metrics; predictions; checkpoint/; for LoRA runs on a checkpoint
adapter/ and merged/) is copied whole into a staging folder, which is renamed to the next free
version (a rename is atomic: two promotions at once get two versions), a model.json card is
written, and ModelPromoted is published. If Kafka refuses the event the folder is removed, so
the registry's folders and its read model never disagree for long.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from pathlib import Path
from uuid import UUID

from schemas import events as ev
from schemas.api import JobOut
from schemas.steering import Promotion
from service.commands import SOURCE, Gateway, Published, Sender, publish
from service.errors import JobConflict, Problem, InvalidJob

CARD = "model.json"


def _place(staging: Path, name_dir: Path, first: int) -> int:
    """Rename `staging` to the first free version folder from `first`; its version."""
    version = first
    while True:
        try:
            staging.rename(name_dir / str(version))
            return version
        except OSError:  # taken (another promotion, or a folder the read model does not show yet)
            if not (name_dir / str(version)).exists():
                raise
            version += 1


def copy_into_registry(run_folder: Path, registry_dir: Path, name: str, first_version: int, card: dict) -> int:
    name_dir = registry_dir / name
    name_dir.mkdir(parents=True, exist_ok=True)
    staging = name_dir / f".staging-{uuid.uuid4().hex}"
    try:
        shutil.copytree(run_folder, staging, symlinks=False)
        version = _place(staging, name_dir, first_version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    folder = name_dir / str(version)
    (folder / CARD).write_text(json.dumps({**card, "name": name, "version": version}, indent=2, sort_keys=True) + "\n")
    return version


def _trial(job: JobOut, trial_id: str | None):
    trial_id = trial_id or job.best_trial_id
    if trial_id is None:
        raise JobConflict(f"job {job.job_id} has no best trial yet: name trial_id")
    trial = next((t for t in job.trials if t.trial_id == trial_id), None)
    if trial is None:
        raise InvalidJob([Problem("trial_id", f"job {job.job_id} has no trial {trial_id}")])
    if trial.status != "completed" or not trial.artifact_path or not (Path(trial.artifact_path) / "manifest.json").is_file():
        raise JobConflict(f"trial {trial_id} is {trial.status} and has no finished run folder to promote")
    return trial


async def promote(job_id: UUID, promotion: Promotion, gw: Gateway, by: Sender) -> Published:
    job = await gw.read_model.get_job(job_id)
    trial = _trial(job, promotion.trial_id)
    metric = trial.metrics.get(job.metric_name)
    card = {"stage": promotion.stage, "job_id": str(job_id), "trial_id": trial.trial_id,
            "metric_name": job.metric_name, "metric": metric, "params": trial.params,
            "dataset_key": job.dataset_key, "base_model_id": job.base_model_id, "promoted_by": by.actor,
            "reason": by.reason, "source_path": trial.artifact_path}
    first = await gw.read_model.latest_version(promotion.name) + 1
    version = await asyncio.to_thread(copy_into_registry, Path(trial.artifact_path), gw.registry_dir,
                                      promotion.name, first, card)
    folder = gw.registry_dir / promotion.name / str(version)
    payload = ev.ModelPromotedPayload(
        name=promotion.name, version=version, stage=promotion.stage, trial_id=trial.trial_id, path=str(folder),
        source_path=trial.artifact_path, metric_name=job.metric_name, metric=metric,
        params={k: v for k, v in trial.params.items() if isinstance(v, (bool, int, float, str))})
    try:
        return await publish(gw, ev.ModelPromoted(job_id=job_id, source=SOURCE, payload=payload), by)
    except Exception:
        await asyncio.to_thread(shutil.rmtree, folder, True)
        raise
