"""Bad commands get a 422 naming the field and the rule, and publish nothing: the real app,
in-process, over a fake publisher (tests/integration/test_refused_commands.py checks a few of
these against the real Kafka log)."""

from __future__ import annotations

import json

import pytest

from tests.support.specs import SEED_EXAMPLE, example_spec


def _space(**params) -> dict:
    return example_spec(search_space=params)


def _without(field: str) -> dict:
    spec = example_spec()
    del spec[field]
    return spec


# (body, field named in the error, words the rule must contain)
INVALID = [
    (_space(lr={"type": "loguniform", "min": 0, "max": 1e-3}), "search_space.lr", "must be > 0"),
    (_space(lr={"type": "loguniform", "min": -1e-5, "max": 1e-3}), "search_space.lr", "must be > 0"),
    (_space(lr={"type": "loguniform", "min": 1e-3, "max": 1e-5}), "search_space.lr", "must be < max"),
    (_space(lr={"type": "uniform", "min": 0.5, "max": 0.5}), "search_space.lr", "must be < max"),
    (_space(lr={"type": "uniform", "min": 0.9, "max": 0.1}), "search_space.lr", "must be < max"),
    (_space(lr={"type": "uniform", "min": "low", "max": 0.1}), "search_space.lr.min", "valid number"),
    (_space(lr={"type": "uniform", "max": 0.1}), "search_space.lr.min", "required"),
    (_space(bs={"type": "choice", "values": []}), "search_space.bs.values", "at least 1"),
    (_space(bs={"type": "choice"}), "search_space.bs.values", "required"),
    (_space(bs={"type": "choice", "values": "4,8"}), "search_space.bs.values", "valid list"),
    (_space(bs={"type": "choice", "values": [4, {"a": 1}]}), "search_space.bs.values", "item 1 is dict"),
    (_space(n={"type": "randint", "min": 1.5, "max": 8}), "search_space.n.min", "valid integer"),
    (_space(n={"type": "randint", "min": 1, "max": 8.5}), "search_space.n.max", "valid integer"),
    (_space(n={"type": "randint", "min": 8, "max": 8}), "search_space.n", "must be < max"),
    (_space(n={"type": "randint", "min": "1", "max": 8}), "search_space.n.min", "valid integer"),
    (_space(x={"type": "gaussian", "mu": 0}), "search_space.x", "does not match any of the expected tags"),
    (_space(x={"min": 0, "max": 1}), "search_space.x", "Unable to extract tag"),
    (_space(x={"type": "uniform", "min": 0, "max": 1, "step": 2}), "search_space.x.step", "unknown field"),
    (_space(x=[1, 2, 3]), "search_space.x", "dict"),
    (_space(**{"bad-name": {"type": "uniform", "min": 0, "max": 1}}), "search_space", "identifier"),
    (example_spec(search_space={}), "search_space", "at least 1"),
    (example_spec(metric_mode="maximize"), "metric_mode", "'min' or 'max'"),
    (example_spec(metric_mode=None), "metric_mode", "'min' or 'max'"),
    (example_spec(num_samples=0), "num_samples", "greater than or equal to 1"),
    (example_spec(num_samples=1001), "num_samples", "less than or equal to 1000"),
    (example_spec(num_samples=2.5), "num_samples", "valid integer"),
    (example_spec(num_samples="5"), "num_samples", "valid integer"),
    (example_spec(max_concurrent_trials=0), "max_concurrent_trials", "greater than or equal to 1"),
    (example_spec(max_concurrent_trials=65), "max_concurrent_trials", "less than or equal to 64"),
    (example_spec(name=""), "name", "at least 1 character"),
    (example_spec(name="   "), "name", "at least 1 character"),
    (example_spec(name="x" * 201), "name", "at most 200 characters"),
    (example_spec(dataset_key=7), "dataset_key", "valid string"),
    (example_spec(priority="high"), "priority", "unknown field"),
    (_without("metric_name"), "metric_name", "required"),
    (_without("base_model_id"), "base_model_id", "required"),
    (_without("search_space"), "search_space", "required"),
    ([example_spec()], "body", "valid dictionary"),
    ("just a string", "body", "valid dictionary"),
]
# Checked against what the run pipeline can do (training.validate), still before publishing.
INVALID += [
    (SEED_EXAMPLE, "base_model_id", "not available offline"),
    (example_spec(base_model_id="no/such-model"), "base_model_id", "TUNIX_MODELS_DIR"),
    (example_spec(dataset_key="nope-v9"), "dataset_key", "ungar_hcd-v1"),
    (example_spec(metric_name="accuracy"), "metric_name", "available: score"),
    (_space(lr={"type": "uniform", "min": 0.1, "max": 0.2}), "search_space.lr", "unknown hyperparameter"),
    (example_spec(fixed_params={"epochs": 3}), "fixed_params.epochs", "unknown hyperparameter"),
    (example_spec(fixed_params={"batch_size": 8}), "body", "both set batch_size"),
    (example_spec(scheduler="median"), "scheduler", "'fifo', 'asha', 'hyperband' or 'pbt'"),
    (example_spec(search_algorithm="bayes"), "search_algorithm", "'random', 'grid' or 'tpe'"),
    (example_spec(resources_per_trial={"cpu": 0}), "resources_per_trial.cpu", "greater than 0"),
    (example_spec(max_failed_trials=-1), "max_failed_trials", "greater than or equal to 0"),
    (example_spec(resources_per_trial={"custom": {"GPU": 1}}), "resources_per_trial.custom", "own fields"),
    (example_spec(resources_per_trial={"custom": {"a100": 0}}), "resources_per_trial.custom", "more than 0"),
    (example_spec(max_trial_retries=11), "max_trial_retries", "less than or equal to 10"),
    (example_spec(time_budget_s=0), "time_budget_s", "greater than 0"),
    (_space(lr={"type": "normal", "mean": 0, "sd": 0}), "search_space.lr.sd", "greater than 0"),
    (_space(lr={"type": "quniform", "min": 0, "max": 1}), "search_space.lr.q", "required"),
    (_space(lr={"type": "grid", "values": []}), "search_space.lr.values", "at least 1"),
    # Nothing the API accepts may be refused downstream (JSON has no NaN; PostgreSQL no NUL;
    # JSONB goes through orjson's 64-bit integers).
    (_space(lr={"type": "uniform", "min": 0, "max": float("inf")}), "search_space.lr.max", "finite number"),
    (_space(lr={"type": "normal", "mean": float("nan"), "sd": 1}), "search_space.lr.mean", "finite number"),
    (example_spec(time_budget_s=float("inf")), "time_budget_s", "finite number"),
    (example_spec(resources_per_trial={"cpu": float("nan")}), "resources_per_trial.cpu", "finite number"),
    (_space(bs={"type": "choice", "values": [4, float("-inf")]}), "search_space.bs.values", "item 1: numbers must be finite"),
    (_space(bs={"type": "grid", "values": [2**64]}), "search_space.bs.values", "item 0: integers must fit in 64 bits"),
    (_space(n={"type": "randint", "min": 0, "max": 2**64}), "search_space.n.max", "less than or equal to"),
    (example_spec(fixed_params={"max_steps": float("nan")}), "fixed_params.max_steps", "numbers must be finite"),
    (example_spec(fixed_params={"max_steps": [1]}), "fixed_params.max_steps", "must be a number, string or boolean"),
    (example_spec(name="a\x00b"), "name", "NUL"),
    (example_spec(dataset_key="\ud800"), "dataset_key", "unicode string"),
    (_space(bs={"type": "choice", "values": ["x\x00"]}), "search_space.bs.values", "NUL"),
    # Values given outright must pass their hyperparameter's rule, or the tuner would fail the job.
    (example_spec(fixed_params={"max_steps": 0}), "fixed_params.max_steps", "max_steps must be >= 1"),
    (example_spec(fixed_params={"lora_targets": "foo"}), "fixed_params.lora_targets", "lora_targets must be one of"),
    (_space(batch_size={"type": "choice", "values": [8, "big"]}), "search_space.batch_size.values", "batch_size='big'"),
    (example_spec(fixed_params={"lora_rank": 10**9}), "fixed_params.lora_rank", "between 0 and 1024"),
    # A range's ends are values its trials can draw: they pass the rule too (randint's max is excluded).
    (_space(lora_rank={"type": "randint", "min": 1, "max": 10**9}), "search_space.lora_rank.max", "between 0 and 1024"),
    (_space(weight_decay={"type": "uniform", "min": -1, "max": 0.1}), "search_space.weight_decay.min", "must be >= 0"),
    (_space(lora_alpha={"type": "quniform", "min": 0, "max": 32, "q": 8}), "search_space.lora_alpha.min",
     "lora_alpha must be > 0"),
    # PBT changes searched values mid-run; batch_size is a choice (perturbed) in the example.
    (example_spec(scheduler="pbt"), "search_space.batch_size", "PBT cannot change 'batch_size'"),
]
MALFORMED = [
    ('{"name": "x",', "valid JSON"),
    ("{'name': 'x'}", "valid JSON"),
    ("nul\x00l", "valid JSON"),
    ("[1, 2", "valid JSON"),
    ("", "a JSON body is required"),
]


@pytest.fixture
def log_unchanged(gateway):
    """Asserts that the test published nothing."""
    yield
    assert gateway.publisher.published == []


def test_there_are_at_least_30_cases():
    assert len(INVALID) + len(MALFORMED) >= 30


@pytest.mark.parametrize(("body", "field", "rule"), INVALID, ids=[f"{i}:{c[1]}" for i, c in enumerate(INVALID)])
async def test_invalid_body_is_422_naming_field_and_rule(api, log_unchanged, body, field, rule):
    # NaN and Infinity as Python's json writes them (and as the API's parser reads them).
    answer = await api.post("/api/tuning/jobs", content=json.dumps(body, allow_nan=True).encode(),
                            headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["error"] == "validation_error"
    matching = [d for d in error["details"] if d["field"] == field]
    assert matching, f"no error names {field}: {error['details']}"
    assert any(rule in d["rule"] for d in matching), matching
    assert field in error["message"]


@pytest.mark.parametrize(("raw", "rule"), MALFORMED)
async def test_malformed_json_is_422(api, log_unchanged, raw, rule):
    answer = await api.post(
        "/api/tuning/jobs", content=raw.encode(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["details"][0]["field"] == "body"
    assert rule in answer.json()["details"][0]["rule"]


async def test_oversized_body_is_413_before_parsing(api, log_unchanged):
    spec = example_spec(name="x" * 100, padding="y" * 70_000)
    answer = await api.post("/api/tuning/jobs", content=json.dumps(spec).encode(),
                               headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert "at most 65536 bytes" in answer.json()["message"]


async def test_oversized_chunked_body_is_413(api, log_unchanged):
    async def chunks():
        for _ in range(40):
            yield b"x" * 4096

    answer = await api.post("/api/tuning/jobs", content=chunks(),
                               headers={"content-type": "application/json"})
    assert answer.status_code == 413


async def test_a_body_that_is_not_utf8_is_422_in_the_error_body(api, log_unchanged):
    answer = await api.post("/api/tuning/jobs", content=b'{"name": "\xff\xfe"}',
                            headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "validation_error"
    assert answer.json()["details"][0]["field"] == "body"


@pytest.mark.parametrize(("query", "field"), [
    ("offset=191543948845534235291309127499776", "query.offset"), ("offset=-1", "query.offset"),
    ("limit=0", "query.limit"), ("limit=201", "query.limit"), ("status=done", "query.status"),
])
async def test_query_parameters_out_of_bounds_are_422(api, query, field):
    answer = await api.get(f"/api/tuning/jobs?{query}")
    assert answer.status_code == 422, answer.text
    assert answer.json()["details"][0]["field"] == field
