"""GGUF files through the real api process (its own TUNIX_MODELS_DIR and Ollama store, tests/conftest.py):
a quantization gguf cannot dequantize and a truncated download are each a 422 naming base_model_id, and
nothing reaches Kafka; an Ollama model in the api's store is listed by GET /api/base-models."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from adapters.event_log import end_offsets
from tests.support.gguf_fixtures import smollm2_gguf, truncated_copy, write_ollama_store, write_tiny_gguf
from tests.support.session import TOPICS
from tests.support.specs import example_spec


@pytest.fixture
async def publishes_nothing(stack):
    before = await end_offsets(stack.kafka, TOPICS.events.name)
    yield
    assert await end_offsets(stack.kafka, TOPICS.events.name) == before


async def _rule(client, model_id: str) -> str:
    answer = await client.post("/api/tuning/jobs", json=example_spec(base_model_id=model_id))
    assert answer.status_code == 422, answer.text
    (rule,) = [d["rule"] for d in answer.json()["details"] if d["field"] == "base_model_id"]
    return rule


async def test_an_unsupported_quantization_and_a_truncated_gguf_are_422_and_publish_nothing(
        client, service_env, publishes_nothing):
    models = Path(service_env["TUNIX_MODELS_DIR"])
    name = uuid.uuid4().hex[:8]
    write_tiny_gguf(models / f"{name}-q8k.gguf", "Q8_K")
    truncated_copy(smollm2_gguf(), models / f"{name}-cut.gguf", 60_000_000)
    assert "quantization Q8_K cannot be dequantized" in await _rule(client, f"{name}-q8k.gguf")
    assert "truncated" in await _rule(client, str(models / f"{name}-cut.gguf"))


async def test_an_ollama_model_in_the_api_s_store_is_listed_with_its_quantization(client, service_env):
    name = f"smollm2-{uuid.uuid4().hex[:8]}"
    write_ollama_store(Path(service_env["OLLAMA_MODELS"]), smollm2_gguf(), name=name, tag="135m")
    listed = (await client.get("/api/base-models")).json()
    (model,) = [m for m in listed if m["model_id"] == f"ollama:{name}:135m"]
    assert (model["source"], model["quantization"], model["parameters"], model["problem"]) == (
        "ollama", "Q4_1", 134_515_008, None)
