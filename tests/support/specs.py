"""Job specs for tests: the seed document's example, and the same on the built-in tiny model."""

from __future__ import annotations

import copy

SEED_EXAMPLE = {
    "name": "Gemma 2B LR Sweep",
    "dataset_key": "ungar_hcd-v1",
    "base_model_id": "google/gemma-2b-it",
    "metric_name": "score",
    "metric_mode": "max",
    "num_samples": 5,
    "max_concurrent_trials": 1,
    "search_space": {
        "learning_rate": {"type": "loguniform", "min": 1e-5, "max": 1e-3},
        "batch_size": {"type": "choice", "values": [4, 8, 16]},
    },
}


# The seed's example, runnable offline: the built-in tiny model instead of google/gemma-2b-it.
EXAMPLE = {**SEED_EXAMPLE, "base_model_id": "tiny-gemma3"}


def example_spec(**overrides) -> dict:
    spec = copy.deepcopy(EXAMPLE)
    spec.update(overrides)
    return spec
