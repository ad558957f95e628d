"""A job on an Ollama model through the real stack: SmolLM2's GGUF in a fixture Ollama store (the wheel's
file hard-linked as its blob), named ollama:smollm2:135m, converted once by the first trial into the
stack's conversion cache, tuned with LoRA to JobCompleted, its lineage in every trial's manifest."""

from __future__ import annotations

from tests.e2e.test_real_models_e2e import _manifests, _run
from tests.gguf_fixtures import sha256_of, smollm2_gguf, write_ollama_store
from tests.specs import example_spec


def test_an_ollama_model_runs_a_job_to_completion_and_records_its_gguf(tuning_stack):
    write_ollama_store(tuning_stack["ollama"], smollm2_gguf())
    job = _run(tuning_stack, example_spec(
        name="ollama-smollm2", dataset_key="capitals_chat-v1", base_model_id="ollama:smollm2:135m", num_samples=1,
        fixed_params={"max_steps": 8, "eval_every": 4, "max_seq_length": 64, "batch_size": 4},
        search_space={"learning_rate": {"type": "choice", "values": [1e-4]}}))
    (manifest,) = _manifests(job)
    gguf = manifest["model"]["gguf"]
    assert (manifest["model"]["source"], gguf["sha256"], gguf["quantization"]) == (
        "ollama", sha256_of(smollm2_gguf()), "Q4_1")
    assert gguf["cache_entry"] == str(tuning_stack["folder"] / "converted-models" / gguf["sha256"])
