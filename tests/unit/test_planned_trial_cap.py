"""A job plans at most MAX_PLANNED_TRIALS trials (num_samples x grid points): the rule in the
spec's own validation (so a forged event is refused by the consumers' parser too), JobSpec.adjusted,
and the 422 that create, PATCH, extend and fork answer through the app over fakes."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from schemas import events as ev
from schemas.api import JobOut
from schemas.job_spec import MAX_PLANNED_TRIALS, JobSpec
from service.commands.commands import Gateway
from service.errors import JobNotFound
from tests.support.specs import example_spec
from tests.unit.fakes import FakePublisher, FakeReadModel
from training.folders import Folders


def _grid_spec(num_samples=1, **sizes) -> dict:
    return example_spec(num_samples=num_samples, search_algorithm="grid", search_space={
        name: {"type": "grid", "values": list(range(size))} for name, size in sizes.items()})


def test_the_spec_lists_its_grid_as_before_choices_included_with_grid_search():
    spec = JobSpec.model_validate(example_spec(search_algorithm="grid", search_space={
        "lr": {"type": "grid", "values": [1e-3, 2e-3]}, "batch_size": {"type": "choice", "values": [4, 8, 16]},
        "wd": {"type": "uniform", "min": 0, "max": 0.1}}))
    assert list(spec.grid_points()) == [{"lr": lr, "batch_size": bs} for lr in (1e-3, 2e-3) for bs in (4, 8, 16)]
    assert spec.planned_trials() == spec.num_samples * 6
    random = JobSpec.model_validate(example_spec())  # a choice under random search is no grid
    assert list(random.grid_points()) == [{}] and random.planned_trials() == random.num_samples


def _rules(exc: ValidationError) -> dict[str, str]:
    return {".".join(map(str, e["loc"])): e["msg"] for e in exc.errors()}


def test_the_spec_refuses_more_planned_trials_than_the_cap_naming_the_field():
    with pytest.raises(ValidationError) as grid:
        JobSpec.model_validate(_grid_spec(a=1000, b=1000, c=1000))
    assert _rules(grid.value) == {"search_space": f"the grid has more than {MAX_PLANNED_TRIALS} points "
                                  f"(a 1000 x b 1000 x c 1000 values); a job plans at most {MAX_PLANNED_TRIALS} "
                                  "trials (num_samples x grid points)"}
    with pytest.raises(ValidationError) as samples:
        JobSpec.model_validate(_grid_spec(num_samples=3, a=100, b=50))
    assert _rules(samples.value)["num_samples"].startswith("must be at most 2: 3 x 5000 grid points would plan 15000")
    assert JobSpec.model_validate(_grid_spec(num_samples=2, a=100, b=50)).planned_trials() == MAX_PLANNED_TRIALS


def test_a_forged_event_over_the_cap_is_refused_by_the_consumers_parser():
    """What the projector dead-letters and the tuner skips: the same JobSpec rule, from Kafka."""
    spec = JobSpec.model_validate(_grid_spec(num_samples=2, a=100, b=50))
    for event in (ev.JobCreated(job_id=uuid.uuid4(), source="t", payload=ev.JobCreatedPayload(spec=spec)),
                  ev.JobExtended(job_id=uuid.uuid4(), source="t", payload=ev.JobExtendedPayload(
                      num_samples_added=1, claim=None, spec=spec))):
        wire = json.loads(ev.serialize_event(event))
        assert ev.parse_event(json.dumps(wire)).payload.spec == spec  # at the cap: parses
        wire["payload"]["spec"]["num_samples"] = 3  # 15,000 planned trials, as another producer could write
        with pytest.raises(ValidationError) as refused:
            ev.parse_event(json.dumps(wire))
        assert f"{event.type}.payload.spec.num_samples" in _rules(refused.value)  # the tag, then the field


def test_adjusted_validates_what_model_copy_lets_through():
    spec = JobSpec.model_validate(_grid_spec(num_samples=2, a=100, b=50))
    assert spec.model_copy(update={"num_samples": 3}).planned_trials() == 15000  # what the tuner's fold does today
    with pytest.raises(ValidationError) as over:
        spec.adjusted({"num_samples": 3})
    assert "num_samples" in _rules(over.value)
    with pytest.raises(ValidationError) as unknown:
        spec.adjusted({"search_algorithm": "bayes", "colour": "red"})
    assert set(_rules(unknown.value)) == {"search_algorithm", "colour"}
    fewer = spec.adjusted({"num_samples": 1, "time_budget_s": None})
    assert fewer == spec.model_copy(update={"num_samples": 1}) and fewer.planned_trials() == 5000


# The app over fakes: a read model that also answers get_job for the steering commands.

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class JobsReadModel(FakeReadModel):
    def __init__(self):
        super().__init__()
        self.jobs: dict[uuid.UUID, JobOut] = {}

    def add(self, spec: dict, status: str) -> uuid.UUID:
        job_id = uuid.uuid4()
        self.jobs[job_id] = JobOut.model_validate({
            "job_id": job_id, "name": spec["name"], "status": status, "dataset_key": spec["dataset_key"],
            "base_model_id": spec["base_model_id"], "metric_name": spec["metric_name"],
            "metric_mode": spec["metric_mode"], "num_samples": spec["num_samples"],
            "max_concurrent_trials": spec["max_concurrent_trials"], "created_at": T0, "started_at": None,
            "finished_at": None, "best_trial_id": None, "best_metric": None, "error": None, "spec": spec,
            "best_run_id": None, "best_checkpoint_path": None, "trials": [], "best_trial": None})
        return job_id

    async def get_job(self, job_id: uuid.UUID, as_of=None) -> JobOut:
        if job_id not in self.jobs:
            raise JobNotFound(job_id)
        return self.jobs[job_id]

    async def job_events(self, job_id: uuid.UUID) -> list:
        return []


@pytest.fixture
def jobs() -> JobsReadModel:
    return JobsReadModel()


@pytest.fixture
def gateway(jobs) -> Gateway:
    """conftest's gateway with a read model that has jobs (the `api` fixture uses this one)."""
    publisher = FakePublisher()
    publisher.read_model = jobs
    return Gateway(publisher, jobs, Folders(), projection_wait_s=0.2)


def _refused(answer, field: str) -> str:
    assert answer.status_code == 422, answer.text
    rules = {d["field"]: d["rule"] for d in answer.json()["details"]}
    assert field in rules, rules
    return rules[field]


async def test_create_refuses_a_billion_point_grid_and_publishes_nothing(api, gateway):
    rule = _refused(await api.post("/api/tuning/jobs", json=_grid_spec(a=1000, b=1000, c=1000)), "search_space")
    assert f"a job plans at most {MAX_PLANNED_TRIALS} trials" in rule
    rule = _refused(await api.post("/api/tuning/jobs", json=_grid_spec(num_samples=3, a=100, b=50)), "num_samples")
    assert rule.startswith("must be at most 2:")
    assert gateway.publisher.published == []


async def test_patch_beyond_the_cap_is_refused_naming_num_samples(api, gateway, jobs):
    job_id = jobs.add(_grid_spec(num_samples=2, a=100, b=50), "running")
    rule = _refused(await api.patch(f"/api/tuning/jobs/{job_id}", json={"num_samples": 3}), "num_samples")
    assert rule.startswith("must be at most 2: 3 x 5000 grid points would plan 15000 trials")
    assert gateway.publisher.published == []
    lowered = await api.patch(f"/api/tuning/jobs/{job_id}", json={"num_samples": 1})
    assert lowered.status_code == 202, lowered.text
    assert [e.payload.changes for e in gateway.publisher.published] == [{"num_samples": 1}]


async def test_patch_of_a_job_projected_before_the_cap_is_a_conflict_not_a_500(api, jobs):
    job_id = jobs.add(_grid_spec(a=1000, b=1000, c=1000), "running")  # a read model row from before the cap
    answer = await api.patch(f"/api/tuning/jobs/{job_id}", json={"max_concurrent_trials": 2})
    assert answer.status_code == 409 and "search_space: the grid has more than" in answer.json()["message"]


async def test_extend_beyond_the_cap_is_refused_with_how_many_may_be_added(api, gateway, jobs):
    job_id = jobs.add(_grid_spec(num_samples=1, a=100, b=50), "completed")
    rule = _refused(await api.post(f"/api/tuning/jobs/{job_id}/extend", json={"num_samples": 2}), "num_samples")
    assert rule == (f"may add at most 1: the job has 1 sample(s) x 5000 grid points and a job plans at most "
                    f"{MAX_PLANNED_TRIALS} trials (num_samples x grid points)")
    assert gateway.publisher.published == []
    allowed = await api.post(f"/api/tuning/jobs/{job_id}/extend", json={"num_samples": 1})
    assert allowed.status_code == 202, allowed.text
    assert gateway.publisher.published[-1].payload.spec.planned_trials() == MAX_PLANNED_TRIALS


async def test_fork_beyond_the_cap_is_refused_naming_the_change(api, gateway, jobs):
    parent = jobs.add(_grid_spec(num_samples=2, a=100, b=50), "completed")
    rule = _refused(await api.post(f"/api/tuning/jobs/{parent}/fork", json={"changes": {"num_samples": 3}}),
                    "changes.num_samples")
    assert rule.startswith("must be at most 2:")
    bigger = {"a": {"type": "grid", "values": list(range(1000))}, "b": {"type": "grid", "values": list(range(1000))}}
    rule = _refused(await api.post(f"/api/tuning/jobs/{parent}/fork", json={"changes": {"search_space": bigger}}),
                    "changes.search_space")
    assert rule.startswith(f"the grid has more than {MAX_PLANNED_TRIALS} points")
    assert gateway.publisher.published == []
