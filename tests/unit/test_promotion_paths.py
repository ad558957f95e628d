"""Promote copies only the job's own run folder, never what a link in it points at, picks a
version the event can carry, and leaves no folder behind when it fails (no servers: a fake
read model and publisher, real folders under tmp_path)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from adapters.publisher import Unavailable
from schemas.artifact_layout import trial_run_folder
from schemas.steering import Promotion
from service.commands import promotion
from service.commands.commands import Gateway, Sender
from service.commands.promotion import MAX_VERSION, own_run_folder, promote
from service.errors import InvalidJob, JobConflict
from service.file_checks import off_loop
from tests.support.waiting import wait_until
from tests.unit.fakes import FakePublisher
from training.folders import Folders

JOB = uuid.UUID("00000000-0000-0000-0000-0000000000aa")


class ReadModel:
    """The job as the read model shows it (its trials came from the log), and the registry's latest version."""

    def __init__(self, artifact_path: str, latest: int = 0, metric_name: str = "score"):
        trial = SimpleNamespace(trial_id="t1", status="completed", artifact_path=artifact_path,
                                metrics={"score": 0.9}, params={"learning_rate": 0.01})
        self.job = SimpleNamespace(job_id=JOB, best_trial_id="t1", trials=[trial], metric_name=metric_name,
                                   dataset_key="ungar_hcd-v1", base_model_id="tiny-gemma3")
        self.latest = latest

    async def get_job(self, job_id):
        return self.job

    async def latest_version(self, name):
        return self.latest

    async def event_projected(self, event_id):
        return True


class FailingPublisher(FakePublisher):
    async def publish(self, event):
        raise Unavailable("kafka", "no broker answered")


def _run_folder(tuning: Path, job_id=JOB, trial_id="t1") -> Path:
    folder = trial_run_folder(tuning / str(job_id), trial_id)
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"run_id": trial_id}))
    (folder / "metrics.jsonl").write_text("{}\n")
    return folder


def _gateway(tmp_path: Path, read_model, publisher=None) -> Gateway:
    return Gateway(publisher or FakePublisher(), read_model, Folders(), projection_wait_s=0,
                   registry_dir=tmp_path / "registry", tuning_dir=tmp_path / "tuning")


def _left_in_registry(tmp_path: Path) -> list[str]:
    name_dir = tmp_path / "registry" / "hcd"
    return sorted(p.name for p in name_dir.iterdir()) if name_dir.exists() else []


async def test_the_jobs_own_run_folder_is_copied_whatever_artifact_path_the_log_says(tmp_path):
    own = _run_folder(tmp_path / "tuning")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "manifest.json").write_text("{}")
    (elsewhere / "secret.txt").write_text("not for the registry")
    gw = _gateway(tmp_path, ReadModel(str(elsewhere)))
    published = await promote(JOB, Promotion(name="hcd"), gw, Sender())
    copied = tmp_path / "registry" / "hcd" / "1"
    assert sorted(p.name for p in copied.iterdir()) == ["manifest.json", "metrics.jsonl", "model.json"]
    assert published.event.payload.source_path == str(own.resolve())
    assert json.loads((copied / "model.json").read_text())["source_path"] == str(own.resolve())


async def test_a_trial_without_a_run_folder_in_its_jobs_folder_is_refused_alike_for_existing_and_missing(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "manifest.json").write_text("{}")
    answers = []
    for artifact_path in (str(outside), str(tmp_path / "missing")):
        gw = _gateway(tmp_path, ReadModel(artifact_path))
        with pytest.raises(JobConflict) as refused:
            await promote(JOB, Promotion(name="hcd"), gw, Sender())
        answers.append(str(refused.value))
        assert gw.publisher.published == []
    assert answers[0] == answers[1] and str(tmp_path) not in answers[0]
    assert _left_in_registry(tmp_path) == []


async def test_a_trial_id_that_climbs_out_of_the_jobs_folder_is_refused(tmp_path):
    other_job = uuid.uuid4()
    _run_folder(tmp_path / "tuning", other_job, "t1")  # another job's finished run folder
    read_model = ReadModel("")
    read_model.job.trials[0].trial_id = read_model.job.best_trial_id = f"../../{other_job}/runs/t1"
    with pytest.raises(JobConflict, match="no finished run folder"):
        await promote(JOB, Promotion(name="hcd"), _gateway(tmp_path, read_model), Sender())
    assert _left_in_registry(tmp_path) == []


@pytest.mark.parametrize("link", ["file", "folder"])
async def test_a_link_out_of_the_run_folder_refuses_the_promotion_and_leaves_nothing(tmp_path, link):
    own = _run_folder(tmp_path / "tuning")
    target = tmp_path / "secret"
    if link == "file":
        target.write_text("secret")
    else:
        target.mkdir()
        (target / "key").write_text("secret")
    (own / "checkpoint").mkdir()
    os.symlink(target, own / "checkpoint" / "weights")
    gw = _gateway(tmp_path, ReadModel(str(own)))
    with pytest.raises(JobConflict) as refused:
        await promote(JOB, Promotion(name="hcd"), gw, Sender())
    assert "checkpoint/weights" in str(refused.value) and str(target) not in str(refused.value)
    assert _left_in_registry(tmp_path) == [] and gw.publisher.published == []


async def test_a_link_that_stays_inside_the_run_folder_is_copied_as_its_content(tmp_path):
    own = _run_folder(tmp_path / "tuning")
    os.symlink("manifest.json", own / "manifest-link.json")
    await promote(JOB, Promotion(name="hcd"), _gateway(tmp_path, ReadModel(str(own))), Sender())
    copied = tmp_path / "registry" / "hcd" / "1" / "manifest-link.json"
    assert not copied.is_symlink() and json.loads(copied.read_text()) == {"run_id": "t1"}


async def test_a_fifo_in_the_run_folder_is_refused_not_read(tmp_path):
    own = _run_folder(tmp_path / "tuning")
    os.mkfifo(own / "pipe")
    with pytest.raises(JobConflict, match="pipe"):
        await promote(JOB, Promotion(name="hcd"), _gateway(tmp_path, ReadModel(str(own))), Sender())
    assert _left_in_registry(tmp_path) == []


async def test_a_name_at_the_highest_version_is_refused_before_anything_is_copied(tmp_path):
    own = _run_folder(tmp_path / "tuning")
    gw = _gateway(tmp_path, ReadModel(str(own), latest=MAX_VERSION))  # e.g. a forged ModelPromoted
    with pytest.raises(JobConflict, match=f"every version up to {MAX_VERSION}"):
        await promote(JOB, Promotion(name="hcd"), gw, Sender())
    assert _left_in_registry(tmp_path) == [] and gw.publisher.published == []


async def test_versions_taken_on_disk_up_to_the_highest_are_refused_and_the_staging_copy_removed(tmp_path):
    own = _run_folder(tmp_path / "tuning")
    taken = tmp_path / "registry" / "hcd" / str(MAX_VERSION)  # taken, not yet in the read model
    taken.mkdir(parents=True)
    (taken / "model.json").write_text("{}")
    gw = _gateway(tmp_path, ReadModel(str(own), latest=MAX_VERSION - 1))
    with pytest.raises(JobConflict, match="every version"):
        await promote(JOB, Promotion(name="hcd"), gw, Sender())
    assert _left_in_registry(tmp_path) == [str(MAX_VERSION)]


async def test_a_publish_failure_removes_the_copied_folder(tmp_path):
    own = _run_folder(tmp_path / "tuning")
    with pytest.raises(Unavailable):
        await promote(JOB, Promotion(name="hcd"), _gateway(tmp_path, ReadModel(str(own)), FailingPublisher()), Sender())
    assert _left_in_registry(tmp_path) == []


async def test_a_payload_the_event_cannot_carry_removes_the_copied_folder(tmp_path):
    own = _run_folder(tmp_path / "tuning")
    gw = _gateway(tmp_path, ReadModel(str(own), metric_name="m" * 101))  # over the payload's bound
    with pytest.raises(InvalidJob) as refused:  # a 422 naming the field, not a 500
        await promote(JOB, Promotion(name="hcd"), gw, Sender())
    assert [p.field for p in refused.value.problems] == ["metric_name"]
    assert _left_in_registry(tmp_path) == [] and gw.publisher.published == []


def _held_copies(monkeypatch):
    """Copies that wait for `release` once started (`started` counts them, `finished` those done)."""
    started, finished, release = threading.Semaphore(0), threading.Semaphore(0), threading.Event()
    real = promotion.copy_into_registry

    def held(*args):
        started.release()
        release.wait(30)
        try:
            return real(*args)
        finally:
            finished.release()

    monkeypatch.setattr(promotion, "copy_into_registry", held)
    return started, finished, release


async def test_a_promote_cancelled_while_copying_leaves_no_version_folder(tmp_path, monkeypatch):
    own = _run_folder(tmp_path / "tuning")
    gw = _gateway(tmp_path, ReadModel(str(own)))
    started, finished, release = _held_copies(monkeypatch)
    promoting = asyncio.create_task(promote(JOB, Promotion(name="hcd"), gw, Sender()))
    assert await asyncio.to_thread(started.acquire, timeout=10)
    promoting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await promoting
    release.set()  # the copy finishes after the request is gone ...
    assert await asyncio.to_thread(finished.acquire, timeout=10)
    # ... and its version folder is removed after it (in a thread, so polled for)
    await asyncio.to_thread(wait_until, lambda: _left_in_registry(tmp_path) == [], 10, "the orphan copy removed")
    assert gw.publisher.published == []


async def test_copies_in_progress_leave_the_file_checks_their_threads(tmp_path, monkeypatch):
    own = _run_folder(tmp_path / "tuning")
    gw = _gateway(tmp_path, ReadModel(str(own)))
    started, _, release = _held_copies(monkeypatch)
    promotions = [asyncio.create_task(promote(JOB, Promotion(name="hcd"), gw, Sender())) for _ in range(4)]
    try:
        for _ in range(2):  # the copy pool's threads are all busy (the other copies queue behind)
            assert await asyncio.to_thread(started.acquire, timeout=10)
        assert await off_loop(own_run_folder, gw.tuning_dir, JOB, "t1") == own.resolve()
    finally:
        release.set()
        await asyncio.gather(*promotions)
    assert _left_in_registry(tmp_path) == ["1", "2", "3", "4"]


async def test_a_card_that_cannot_be_written_removes_the_copied_folder(tmp_path):
    own = _run_folder(tmp_path / "tuning")
    (own / "model.json").mkdir()  # the card's name is taken by a folder: writing it fails
    with pytest.raises(IsADirectoryError):
        await promote(JOB, Promotion(name="hcd"), _gateway(tmp_path, ReadModel(str(own))), Sender())
    assert _left_in_registry(tmp_path) == []
