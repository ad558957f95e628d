"""A refused command publishes nothing on the real log: a sample of tests/unit/test_validation's
cases through the real api process, with the topic's end offsets read from Kafka."""

from __future__ import annotations

import json

import pytest

from adapters.event_log import end_offsets
from tests.support.session import TOPICS
from tests.support.specs import SEED_EXAMPLE, example_spec

SAMPLE = [
    (example_spec(num_samples=0), "num_samples"),
    (example_spec(search_space={"lr": {"type": "loguniform", "min": 0, "max": 1e-3}}), "search_space.lr"),
    (SEED_EXAMPLE, "base_model_id"),
    (example_spec(scheduler="pbt"), "search_space.batch_size"),
]


@pytest.fixture
async def log_unchanged(stack, client):
    """Asserts that the test published nothing: the topic's end offsets did not move."""
    before = await end_offsets(stack.kafka, TOPICS.events.name)
    jobs_before = (await client.get("/api/tuning/jobs")).json()["total"]
    yield
    assert await end_offsets(stack.kafka, TOPICS.events.name) == before
    assert (await client.get("/api/tuning/jobs")).json()["total"] == jobs_before


@pytest.mark.parametrize(("body", "field"), SAMPLE, ids=[c[1] for c in SAMPLE])
async def test_invalid_body_is_422_and_publishes_nothing(client, log_unchanged, body, field):
    answer = await client.post("/api/tuning/jobs", json=body)
    assert answer.status_code == 422, answer.text
    assert field in [d["field"] for d in answer.json()["details"]]


async def test_malformed_and_oversized_bodies_publish_nothing(client, log_unchanged):
    malformed = await client.post("/api/tuning/jobs", content=b'{"name": "x",',
                                  headers={"content-type": "application/json"})
    assert malformed.status_code == 422, malformed.text
    oversized = await client.post("/api/tuning/jobs", content=json.dumps(example_spec(padding="y" * 70_000)).encode(),
                                  headers={"content-type": "application/json"})
    assert oversized.status_code == 413


# Every command's free text is storable text: a NUL (PostgreSQL cannot store it) or a lone
# surrogate (not UTF-8) is a 422 naming the field, never a 202 the projector then dead-letters.
NUL_COMMANDS = [
    ("post", "cancel", {"reason": "stop\u0000now"}, "reason"),
    ("post", "start", {"reason": "go\u0000"}, "reason"),
    ("patch", "", {"num_samples": 2, "reason": "more\u0000"}, "reason"),
    ("post", "extend", {"num_samples": 1, "reason": "again\u0000"}, "reason"),
    ("post", "fork", {"reason": "branch\u0000"}, "reason"),
    ("post", "fork", {"changes": {"name": "forked\u0000"}}, "changes.name"),
    ("post", "promote", {"name": "m", "reason": "ship\u0000"}, "reason"),
    ("post", "promote", {"name": "m", "trial_id": "t\u0000"}, "trial_id"),
]


@pytest.fixture
async def created_job(client) -> str:
    created = await client.post("/api/tuning/jobs", json=example_spec(name="refused commands"))
    assert created.status_code == 201, created.text
    return created.json()["job_id"]


@pytest.mark.parametrize(("method", "verb", "body", "field"), NUL_COMMANDS,
                         ids=[f"{c[1] or 'patch'}:{c[3]}" for c in NUL_COMMANDS])
async def test_a_command_with_a_nul_is_422_and_publishes_nothing(client, created_job, log_unchanged, method, verb,
                                                                   body, field):
    url = f"/api/tuning/jobs/{created_job}" + (f"/{verb}" if verb else "")
    answer = await client.request(method.upper(), url, json=body)
    assert answer.status_code == 422, answer.text
    assert [d["field"] for d in answer.json()["details"]] == [field]
    assert "NUL" in answer.json()["details"][0]["rule"]
    assert (await client.get(f"/api/tuning/jobs/{created_job}")).json()["status"] == "created"


async def test_a_lone_surrogate_or_an_oversized_reason_is_422(client, created_job, log_unchanged):
    surrogate = await client.post(f"/api/tuning/jobs/{created_job}/cancel", content=b'{"reason": "a\\ud800b"}',
                                  headers={"content-type": "application/json"})
    assert surrogate.status_code == 422 and surrogate.json()["details"][0]["field"] == "reason"
    oversized = await client.post(f"/api/tuning/jobs/{created_job}/cancel", json={"reason": "r" * 2001})
    assert oversized.status_code == 422 and "at most 2000 characters" in oversized.json()["details"][0]["rule"]
