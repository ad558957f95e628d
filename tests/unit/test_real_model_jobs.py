"""Jobs on real checkpoints are checked at the API before anything is published: a folder, a
hub id in the offline Hugging Face cache (the seed's google/gemma-2b-it), a broken folder, a
config tunix cannot honour, a run that will not fit in memory."""

from __future__ import annotations

import json

import httpx
import pytest

from adapters.settings import Settings
from app.main import create_app
from tests.support.hf_fixtures import write_cached_snapshot, write_tiny_checkpoint
from tests.support.specs import SEED_EXAMPLE, example_spec
from tests.unit.fakes import fake_gateway
from training.folders import Folders


@pytest.fixture
async def real_models(tmp_path):
    gateway = fake_gateway(projects=False, wait_s=0, folders=Folders(models=tmp_path / "models", hf_cache=tmp_path / "hub"))
    app = create_app(Settings(), gateway=gateway)
    async with app.router.lifespan_context(app):
        # localhost: an API without tokens answers only local Host names (app/http_guard.py)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
            yield client, gateway, tmp_path


async def _post(client, body) -> httpx.Response:
    return await client.post("/api/tuning/jobs", json=body)


async def test_a_folder_under_the_models_dir_is_accepted_by_name_or_absolute_path_and_nowhere_else(real_models):
    client, gateway, tmp = real_models
    folder = write_tiny_checkpoint(tmp / "models" / "qwen", "qwen3")
    assert (await _post(client, example_spec(base_model_id=str(folder)))).status_code == 202
    write_tiny_checkpoint(tmp / "models" / "org" / "llama-ish", "qwen2")
    assert (await _post(client, example_spec(base_model_id="org/llama-ish"))).status_code == 202
    outside = write_tiny_checkpoint(tmp / "anywhere" / "qwen", "qwen3")  # a valid checkpoint, outside
    refused = await _post(client, example_spec(base_model_id=str(outside)))
    assert refused.status_code == 422 and "base_model_id" in [d["field"] for d in refused.json()["details"]]
    assert len(gateway.publisher.published) == 2


async def test_the_seed_example_names_the_missing_cache_entry_then_runs_once_it_is_cached(real_models):
    client, gateway, tmp = real_models
    refused = await _post(client, SEED_EXAMPLE)
    assert refused.status_code == 422
    (detail,) = [d for d in refused.json()["details"] if d["field"] == "base_model_id"]
    assert "google/gemma-2b-it" in detail["rule"] and "hf download google/gemma-2b-it" in detail["rule"]
    assert str(tmp / "hub") in detail["rule"]
    write_cached_snapshot(tmp / "hub", "google/gemma-2b-it", "gemma")
    assert (await _post(client, SEED_EXAMPLE)).status_code == 202
    assert gateway.publisher.published[-1].payload.spec.base_model_id == "google/gemma-2b-it"


@pytest.mark.parametrize(("edit", "file", "words"), [
    ({"num_hidden_layers": 4}, "config.json", "num_hidden_layers is 4, but the safetensors hold 2"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "config.json", "rope_scaling='yarn' is not supported"),
    ({"model_type": "mistral"}, "config.json", "model_type 'mistral' is not supported"),
])
async def test_a_broken_or_unsupported_folder_is_422_naming_the_file_and_problem(real_models, edit, file, words):
    client, gateway, tmp = real_models
    folder = write_tiny_checkpoint(tmp / "models" / "m", "qwen3")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **edit}))
    answer = await _post(client, example_spec(base_model_id=str(folder)))
    assert answer.status_code == 422
    (detail,) = [d for d in answer.json()["details"] if d["field"] == "base_model_id"]
    assert str(folder / file) in detail["rule"] and words in detail["rule"]
    assert gateway.publisher.published == []


async def test_a_run_that_clearly_will_not_fit_is_refused_with_the_estimate(real_models):
    client, gateway, tmp = real_models
    folder = write_tiny_checkpoint(tmp / "models" / "m", "gemma3")
    body = example_spec(base_model_id=str(folder), fixed_params={"lora_rank": 0, "max_seq_length": 100_000},
                        search_space={"batch_size": {"type": "choice", "values": [8, 100_000]}})
    answer = await _post(client, body)
    assert answer.status_code == 422, answer.text
    (detail,) = [d for d in answer.json()["details"] if d["field"] == "base_model_id"]
    assert "full fine-tuning" in detail["rule"] and "batch_size 100000" in detail["rule"] and "GiB" in detail["rule"]
    assert gateway.publisher.published == []
