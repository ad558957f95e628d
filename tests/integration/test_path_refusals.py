"""Nothing a request names reads outside its folder, through the real api and projector: dataset
keys and model paths outside their folders are a 422 that says nothing about what exists there, a
model folder whose config.json is a FIFO answers 422 while the api stays responsive, and promote
copies only the job's own run folder whatever the log says (events produced straight onto Kafka,
as another system would)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path

import pytest

from adapters.event_log import end_offsets
from schemas import events as ev
from schemas.artifact_layout import trial_run_folder
from schemas.job_spec import JobSpec
from tests.support.hf_fixtures import write_tiny_checkpoint
from tests.support.session import TOPICS
from tests.support.specs import example_spec
from tests.support.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
SOURCE = "tests.other-system"
MAX_VERSION = 2**31 - 1


@pytest.fixture
async def publishes_nothing(stack):
    before = await end_offsets(stack.kafka, TOPICS.events.name)
    yield
    assert await end_offsets(stack.kafka, TOPICS.events.name) == before


async def _refusal(client, field: str, value: str) -> str:
    answer = await client.post("/api/tuning/jobs", json=example_spec(**{field: value}))
    assert answer.status_code == 422, answer.text
    (rule,) = [d["rule"] for d in answer.json()["details"] if d["field"] == field]
    return rule.replace(value, "<given>")  # the answer may echo what was sent, nothing more


async def test_a_dataset_key_outside_the_datasets_folder_is_422_alike_for_existing_and_missing(
        client, publishes_nothing, tmp_path):
    outside = tmp_path / "outside-v1"  # a complete dataset, but not in the api's datasets folder
    outside.mkdir()
    (outside / "manifest.json").write_text(json.dumps({"name": "outside", "version": "1"}))
    (outside / "train.jsonl").write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    relative = os.path.relpath(outside, REPO / "datasets")  # the api runs in the repository, datasets/ by default
    pairs = [(relative, relative.replace("outside-v1", "missing-v1")), (str(outside), str(tmp_path / "missing-v1")),
             ("../../../../etc", "../../../../no-such-folder"), ("/etc/hostname", "/no/such/file")]
    for existing, missing in pairs:
        assert await _refusal(client, "dataset_key", existing) == await _refusal(client, "dataset_key", missing)


async def test_a_model_path_outside_the_models_folder_is_422_alike_for_existing_and_missing(
        client, publishes_nothing, tmp_path):
    checkpoint = write_tiny_checkpoint(tmp_path / "outside" / "qwen", "qwen3")  # valid, but not under the roots
    pairs = [("/etc", "/no/such/folder"), (str(checkpoint), str(checkpoint.parent / "nothing")),
             ("../../../../etc", "../../../../no-such-folder")]
    for existing, missing in pairs:
        shown = await _refusal(client, "base_model_id", existing)
        assert shown == await _refusal(client, "base_model_id", missing)
        assert "qwen3" not in shown and "hostname" not in shown


@pytest.mark.parametrize("special", ["fifo", "dev-zero"])
async def test_a_model_whose_config_is_not_a_regular_file_is_422_and_the_api_stays_responsive(
        client, service_env, publishes_nothing, special):
    name = f"{special}-{uuid.uuid4().hex[:8]}"
    folder = write_tiny_checkpoint(Path(service_env["TUNIX_MODELS_DIR"]) / name, "qwen3")
    (folder / "config.json").unlink()
    if special == "fifo":
        os.mkfifo(folder / "config.json")
    else:
        os.symlink("/dev/zero", folder / "config.json")
    # At once: a create that names it, the model listing that reads it, and the health probe.
    created, listed, health = await asyncio.gather(
        client.post("/api/tuning/jobs", json=example_spec(base_model_id=name)),
        client.get("/api/base-models"), client.get("/healthz"))
    assert created.status_code == 422, created.text
    (rule,) = [d["rule"] for d in created.json()["details"] if d["field"] == "base_model_id"]
    assert rule.endswith("config.json: not a regular file")
    assert listed.status_code == 200 and {m["model_id"]: m["problem"] for m in listed.json()}[name] == rule
    assert health.status_code == 200


# ----------------------------------------------------------------------------- promote

async def _send(producer, *events: ev.Event) -> None:
    for event in events:
        await producer.send_and_wait(TOPICS.events.name, ev.serialize_event(event), key=event.key())


def _trial(job_id, trial_id: str, artifact_path: str) -> ev.TrialUpdated:
    return ev.TrialUpdated(job_id=job_id, source=SOURCE, payload=ev.TrialUpdatedPayload(
        trial_id=trial_id, status="completed", metrics={"score": 90.0}, iteration=30, artifact_path=artifact_path))


async def _completed_job(client, producer, *trials: ev.TrialUpdated) -> uuid.UUID:
    job_id = trials[0].job_id
    spec = JobSpec.model_validate(example_spec(name="finished elsewhere"))
    await _send(producer, ev.JobCreated(job_id=job_id, source=SOURCE, payload=ev.JobCreatedPayload(spec=spec)),
                ev.JobStarted(job_id=job_id, source=SOURCE), *trials,
                ev.JobCompleted(job_id=job_id, source=SOURCE, payload=ev.JobCompletedPayload(
                    best_trial_id=trials[0].payload.trial_id, metric_name="score", best_metric=90.0)))

    async def completed():
        job = (await client.get(f"/api/tuning/jobs/{job_id}")).json()
        return job.get("status") == "completed" and len(job["trials"]) == len(trials)
    await eventually(completed, 20, "the job completed in the read model")
    return job_id


def _own_run_folder(service_env, job_id, trial_id: str) -> Path:
    folder = trial_run_folder(Path(service_env["TUNIX_ARTIFACTS_DIR"]) / "tuning" / str(job_id), trial_id)
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"run_id": trial_id}))
    return folder


def _registry(service_env, name: str) -> list[str]:
    folder = Path(service_env["TUNIX_ARTIFACTS_DIR"]) / "models" / name
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def test_promote_refuses_a_trial_whose_artifact_path_is_outside_the_jobs_run_folder(
        client, producer, service_env, tmp_path):
    outside = tmp_path / "someone-elses"
    outside.mkdir()
    (outside / "manifest.json").write_text("{}")
    (outside / "secret.txt").write_text("not for the registry")
    job_id = uuid.uuid4()
    await _completed_job(client, producer, _trial(job_id, "t1", str(outside)))
    name = f"stolen-{uuid.uuid4().hex[:8]}"
    refused = await client.post(f"/api/tuning/jobs/{job_id}/promote", json={"name": name})
    assert refused.status_code == 409, refused.text
    assert "no finished run folder in its job's folder" in refused.json()["message"]
    assert str(outside) not in refused.text
    assert _registry(service_env, name) == []
    assert (await client.get(f"/api/models/{name}/versions")).status_code == 404


async def test_promote_refuses_a_link_out_of_the_run_folder_and_leaves_nothing(client, producer, service_env, tmp_path):
    job_id = uuid.uuid4()
    own = _own_run_folder(service_env, job_id, "t1")
    (tmp_path / "secret.txt").write_text("not for the registry")
    os.symlink(tmp_path / "secret.txt", own / "checkpoint")
    await _completed_job(client, producer, _trial(job_id, "t1", str(own)))
    name = f"linked-{uuid.uuid4().hex[:8]}"
    refused = await client.post(f"/api/tuning/jobs/{job_id}/promote", json={"name": name})
    assert refused.status_code == 409 and "checkpoint" in refused.json()["message"], refused.text
    assert str(tmp_path) not in refused.text and _registry(service_env, name) == []


async def test_a_forged_last_version_makes_promote_a_409_that_leaves_no_folder(client, producer, service_env):
    job_id = uuid.uuid4()
    _own_run_folder(service_env, job_id, "t1")
    await _completed_job(client, producer, _trial(job_id, "t1", "anything"))
    name = f"forged-{uuid.uuid4().hex[:8]}"
    await _send(producer, ev.ModelPromoted(job_id=job_id, source=SOURCE, payload=ev.ModelPromotedPayload(
        name=name, version=MAX_VERSION, stage="candidate", trial_id="t1", path="/x", source_path="/y",
        metric_name="score", metric=90.0)))

    async def forged_projected():
        answer = await client.get(f"/api/models/{name}/versions")
        return answer.status_code == 200 and [v["version"] for v in answer.json()] == [MAX_VERSION]
    await eventually(forged_projected, 20, "the forged version in the read model")
    refused = await client.post(f"/api/tuning/jobs/{job_id}/promote", json={"name": name})
    assert refused.status_code == 409 and f"every version up to {MAX_VERSION}" in refused.json()["message"]
    assert _registry(service_env, name) == []
    # The same run folder promotes under another name: the refusal was about the name only.
    other = f"fresh-{uuid.uuid4().hex[:8]}"
    accepted = await client.post(f"/api/tuning/jobs/{job_id}/promote", json={"name": other})
    assert accepted.status_code == 202, accepted.text
    assert _registry(service_env, other) == ["1"]
