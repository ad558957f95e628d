"""The planned-trial cap on the real api: a grid of 10⁹ points is refused at create (it was
accepted, and a PATCH then listed every point on the event loop until a MemoryError); a job at
the cap is accepted, and a PATCH beyond it is refused naming num_samples while /healthz,
asked at the same moment, answers."""

from __future__ import annotations

import asyncio

from schemas.job_spec import MAX_PLANNED_TRIALS
from tests.support.specs import example_spec
from tests.support.waiting import eventually


def _grid(name: str, **axes: list) -> dict:
    return example_spec(name=name, num_samples=1, search_algorithm="grid",
                        search_space={key: {"type": "grid", "values": values} for key, values in axes.items()})


async def _projected(client, location: str) -> bool:
    return (await client.get(location)).status_code == 200


def _rules(answer) -> dict[str, str]:
    assert answer.status_code == 422, answer.text
    return {d["field"]: d["rule"] for d in answer.json()["details"]}


async def test_a_billion_point_grid_is_refused_at_create(client):
    thousand = list(range(1000))
    body = _grid("billion", learning_rate=thousand, weight_decay=thousand, warmup_steps=thousand)
    rules = _rules(await client.post("/api/tuning/jobs", json=body))
    assert f"a job plans at most {MAX_PLANNED_TRIALS} trials" in rules["search_space"]


async def test_a_patch_beyond_the_cap_is_refused_while_healthz_answers(client):
    # 100 x 100 grid points once: exactly the cap, with hyperparameters the pipeline knows.
    at_cap = _grid("at the cap", learning_rate=[1e-5 * (1 + i) for i in range(100)],
                   weight_decay=[i / 1000 for i in range(100)])
    created = await client.post("/api/tuning/jobs", json=at_cap)
    assert created.status_code in (201, 202), created.text  # 202: the projector has not caught up yet
    job = created.headers["location"]
    await eventually(lambda: _projected(client, job), 30, "the job in the read model")
    job_id = job.rsplit("/", 1)[-1]
    patched, health = await asyncio.gather(client.patch(f"/api/tuning/jobs/{job_id}", json={"num_samples": 2}),
                                           client.get("/healthz"))
    assert _rules(patched)["num_samples"].startswith(f"must be at most 1: 2 x {MAX_PLANNED_TRIALS} grid points")
    assert health.status_code == 200
    events = (await client.get(f"/api/tuning/jobs/{job_id}/events")).json()
    assert [e["type"] for e in events] == ["JobCreated"]  # the refused PATCH published nothing
