"""A refused command publishes nothing on the real log: a sample of tests/unit/test_validation's
cases through the real api process, with the topic's end offsets read from Kafka."""

from __future__ import annotations

import json

import pytest

from adapters.event_log import end_offsets
from tests.session import TOPICS
from tests.specs import SEED_EXAMPLE, example_spec

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
