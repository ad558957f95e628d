"""Promote a trial's model into the registry: artifacts/models/{name}/{version}/.

The trial's run folder (manifest with dataset, base model, hyperparameters, metrics, package
versions and git commit; metrics; predictions; checkpoint/; for LoRA runs on a checkpoint
adapter/ and merged/) is copied whole into a staging folder, which is renamed to the next free
version (a rename is atomic: two promotions at once get two versions), a model.json card is
written, and ModelPromoted is published. If anything fails before Kafka has the event (the
card, the payload, the publish, the request cancelled while the copy runs) the folder is
removed, in a thread, once the copy has finished, so the registry's folders and its read model
never disagree for long. Copies run on their own pool (service/file_checks.py COPIES).

The read model's trials come from the log, which other systems may write to: a trial's
artifact_path is not trusted. The folder copied is the job's own run folder for the trial
(artifacts/tuning/{job_id}/runs/{trial_id}/, schemas/artifact_layout.py), checked inside the
job's folder after resolving symlinks, and a link inside it that leads out of it refuses the
promotion rather than copying what it points at.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import uuid
from pathlib import Path
from uuid import UUID

from schemas import events as ev
from schemas.api import JobOut
from schemas.artifact_layout import trial_run_folder
from schemas.steering import Promotion
from service.commands.commands import SOURCE, Gateway, Published, Sender, projected, send
from service.errors import InvalidJob, JobConflict, Problem, event_values
from service.file_checks import COPIES, off_loop
from training.safe_files import is_regular_file, within

CARD = "model.json"
# The highest version the event (and the read model's int4 column) can carry.
MAX_VERSION = next(m.le for m in ev.ModelPromotedPayload.model_fields["version"].metadata if getattr(m, "le", None))


def _place(staging: Path, name_dir: Path, first: int) -> int:
    """Rename `staging` to the first free version folder from `first`; its version."""
    version = first
    while True:
        if version > MAX_VERSION:
            raise JobConflict(f"model {name_dir.name} has used every version up to {MAX_VERSION}; "
                              "promote under another name")
        try:
            staging.rename(name_dir / str(version))
            return version
        except OSError:  # taken (another promotion, or a folder the read model does not show yet)
            if not (name_dir / str(version)).exists():
                raise
            version += 1


def _copy_run_folder(run_folder: Path, staging: Path) -> None:
    """The run folder's files and folders; JobConflict for a link out of it or a special file
    (checked as each folder is copied, so a link added meanwhile is seen too)."""
    root = run_folder.resolve()

    def refuse_what_leaves(directory: str, names: list[str]) -> list[str]:
        for name in names:
            path = Path(directory, name)
            real = Path(os.path.realpath(path))
            if not real.is_relative_to(root) or not (real.is_dir() or is_regular_file(real)):
                shown = path.relative_to(root) if path.is_relative_to(root) else Path(name)
                raise JobConflict(f"the run folder holds {shown}, which is a link out of the run folder or not a "
                                  "regular file; it cannot be promoted")
        return []

    shutil.copytree(root, staging, symlinks=False, ignore=refuse_what_leaves)


def copy_into_registry(run_folder: Path, registry_dir: Path, name: str, first_version: int, card: dict) -> int:
    """The version the run folder was copied to, with its card; nothing left behind on failure."""
    name_dir = registry_dir / name
    name_dir.mkdir(parents=True, exist_ok=True)
    staging = name_dir / f".staging-{uuid.uuid4().hex}"
    try:
        _copy_run_folder(run_folder, staging)
        version = _place(staging, name_dir, first_version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    folder = name_dir / str(version)
    try:
        (folder / CARD).write_text(json.dumps({**card, "name": name, "version": version}, indent=2, sort_keys=True) + "\n")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return version


def own_run_folder(tuning_dir: Path, job_id: UUID, trial_id: str) -> Path | None:
    """The trial's run folder inside the job's own folder, resolved, when it holds a manifest;
    None otherwise (outside and missing alike)."""
    job_dir = within(str(job_id), tuning_dir)
    folder = within(trial_run_folder(job_dir, trial_id), job_dir) if job_dir is not None else None
    return folder if folder is not None and is_regular_file(folder / "manifest.json") else None


def _trial(job: JobOut, trial_id: str | None):
    trial_id = trial_id or job.best_trial_id
    if trial_id is None:
        raise JobConflict(f"job {job.job_id} has no best trial yet: name trial_id")
    trial = next((t for t in job.trials if t.trial_id == trial_id), None)
    if trial is None:
        raise InvalidJob([Problem("trial_id", f"job {job.job_id} has no trial {trial_id}")])
    return trial


def _no_run_folder(trial) -> JobConflict:
    return JobConflict(f"trial {trial.trial_id} is {trial.status} and has no finished run folder in its job's folder "
                       "to promote")


def _copied(copy: asyncio.Future, name_dir: Path) -> Path | None:
    """The version folder a finished copy made; None when it failed (it left nothing behind)."""
    if copy.cancelled() or copy.exception() is not None:
        return None
    return name_dir / str(copy.result())


async def promote(job_id: UUID, promotion: Promotion, gw: Gateway, by: Sender) -> Published:
    job = await gw.read_model.get_job(job_id)
    trial = _trial(job, promotion.trial_id)
    if trial.status != "completed":
        raise _no_run_folder(trial)
    run_folder = await off_loop(own_run_folder, gw.tuning_dir, job_id, trial.trial_id)
    if run_folder is None:
        raise _no_run_folder(trial)
    first = await gw.read_model.latest_version(promotion.name) + 1
    if first > MAX_VERSION:  # a version the log holds (from any writer) is the highest there can be
        raise JobConflict(f"model {promotion.name} has used every version up to {MAX_VERSION}; promote under "
                          "another name")
    metric = trial.metrics.get(job.metric_name)
    card = {"stage": promotion.stage, "job_id": str(job_id), "trial_id": trial.trial_id,
            "metric_name": job.metric_name, "metric": metric, "params": trial.params,
            "dataset_key": job.dataset_key, "base_model_id": job.base_model_id, "promoted_by": by.actor,
            "reason": by.reason, "source_path": str(run_folder)}
    # Shielded: a cancelled request must not lose the copy's result, which names the folder to
    # remove; the thread runs on regardless.
    name_dir = gw.registry_dir / promotion.name
    copy = asyncio.get_running_loop().run_in_executor(COPIES, functools.partial(
        copy_into_registry, run_folder, gw.registry_dir, promotion.name, first, card))
    try:
        version = await asyncio.shield(copy)
        with event_values():
            payload = ev.ModelPromotedPayload(
                name=promotion.name, version=version, stage=promotion.stage, trial_id=trial.trial_id,
                path=str(name_dir / str(version)), source_path=str(run_folder), metric_name=job.metric_name,
                metric=metric, params={k: v for k, v in trial.params.items() if isinstance(v, (bool, int, float, str))})
        event = await send(gw, ev.ModelPromoted(job_id=job_id, source=SOURCE, payload=payload), by)
    except asyncio.CancelledError:
        # The copy may still be running: its folder is removed once it has finished.
        copy.add_done_callback(lambda done: (folder := _copied(done, name_dir)) and COPIES.submit(
            shutil.rmtree, folder, True))
        raise
    except BaseException:
        if (folder := _copied(copy, name_dir)) is not None:  # the copy has finished (the failure came after it)
            await asyncio.get_running_loop().run_in_executor(COPIES, shutil.rmtree, folder, True)
        raise
    return await projected(gw, event)
