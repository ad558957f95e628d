"""The seed's example job through the real gateway, Kafka and projector."""

from __future__ import annotations

import uuid

from tests.support.session import TOPICS
from schemas.events import parse_event
from tests.support.kafka_log import read_all
from tests.support.specs import example_spec
from tests.support.waiting import eventually


async def test_example_job_round_trips(client, stack):
    created = await client.post("/api/tuning/jobs", json=example_spec())
    assert created.status_code == 201, created.text
    job = created.json()
    job_id = job["job_id"]
    assert created.headers["location"] == f"/api/tuning/jobs/{job_id}"
    assert job["status"] == "created"
    assert job["spec"]["search_space"]["batch_size"] == {"type": "choice", "values": [4, 8, 16]}
    assert job["trials"] == [] and job["best_trial"] is None

    fetched = (await client.get(f"/api/tuning/jobs/{job_id}")).json()
    assert fetched == job

    started = await client.post(f"/api/tuning/jobs/{job_id}/start")
    assert started.status_code == 202, started.text
    assert started.json()["event_type"] == "JobStarted"
    assert (await client.get(f"/api/tuning/jobs/{job_id}")).json()["status"] == "running"

    on_topic = [
        parse_event(r.value)
        for r in await read_all(stack.kafka, TOPICS.events.name)
        if r.key == job_id.encode()
    ]
    assert [e.type for e in on_topic] == ["JobCreated", "JobStarted"]
    assert str(on_topic[1].event_id) == started.json()["event_id"]

    again = await client.post(f"/api/tuning/jobs/{job_id}/start")
    assert again.status_code == 409
    assert "only a created job can start" in again.json()["message"]

    cancelled = await client.post(f"/api/tuning/jobs/{job_id}/cancel")
    assert cancelled.status_code == 202
    assert (await client.get(f"/api/tuning/jobs/{job_id}")).json()["status"] == "cancelling"

    trail = (await client.get(f"/api/tuning/jobs/{job_id}/events")).json()
    assert [e["type"] for e in trail] == ["JobCreated", "JobStarted", "JobCancelRequested"]
    offsets = [e["kafka_offset"] for e in trail]
    assert offsets == sorted(offsets) and len({e["kafka_partition"] for e in trail}) == 1
    assert trail[0]["payload"]["spec"]["name"] == "Gemma 2B LR Sweep"
    assert trail[0]["source"] == "tunix-tune.gateway"


async def test_cancel_before_start_cancels_at_once(client):
    job_id = (await client.post("/api/tuning/jobs", json=example_spec(name="never started"))).json()["job_id"]
    assert (await client.post(f"/api/tuning/jobs/{job_id}/cancel")).status_code == 202
    job = (await client.get(f"/api/tuning/jobs/{job_id}")).json()
    assert job["status"] == "cancelled" and job["finished_at"] is not None
    assert (await client.post(f"/api/tuning/jobs/{job_id}/cancel")).status_code == 409
    assert (await client.post(f"/api/tuning/jobs/{job_id}/start")).status_code == 409


async def test_unknown_job_is_404(client):
    missing = uuid.uuid4()
    for method, path in [
        ("GET", f"/api/tuning/jobs/{missing}"),
        ("GET", f"/api/tuning/jobs/{missing}/events"),
        ("POST", f"/api/tuning/jobs/{missing}/start"),
        ("POST", f"/api/tuning/jobs/{missing}/cancel"),
    ]:
        answer = await client.request(method, path)
        assert answer.status_code == 404, (method, path)
        assert str(missing) in answer.json()["message"]


async def test_list_paginates_and_filters_by_status(client):
    marker = f"list-{uuid.uuid4().hex[:6]}"
    ids = [
        (await client.post("/api/tuning/jobs", json=example_spec(name=f"{marker}-{i}"))).json()["job_id"]
        for i in range(3)
    ]
    await client.post(f"/api/tuning/jobs/{ids[0]}/start")

    async def running_listed():
        page = (await client.get("/api/tuning/jobs", params={"status": "running", "limit": 200})).json()
        return ids[0] in {j["job_id"] for j in page["items"]} and page
    running = await eventually(running_listed, 10, "running job listed")
    assert all(j["status"] == "running" for j in running["items"])
    assert ids[1] not in {j["job_id"] for j in running["items"]}

    first = (await client.get("/api/tuning/jobs", params={"limit": 2})).json()
    second = (await client.get("/api/tuning/jobs", params={"limit": 2, "offset": 2})).json()
    assert len(first["items"]) == 2 and first["total"] >= 3
    assert not {j["job_id"] for j in first["items"]} & {j["job_id"] for j in second["items"]}
    # Newest first: the last job created here comes before the first.
    everything = (await client.get("/api/tuning/jobs", params={"limit": 200})).json()["items"]
    order = [j["job_id"] for j in everything if j["job_id"] in ids]
    assert order == list(reversed(ids))

    bad = await client.get("/api/tuning/jobs", params={"status": "sleeping"})
    assert bad.status_code == 422 and bad.json()["details"][0]["field"] == "query.status"
