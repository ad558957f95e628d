"""The HTTP gateway (FastAPI) and the `tunix-tune` CLI: where users and other systems come in."""

from pathlib import Path

# The example job (the seed's sweep on the built-in dataset and model): `tunix-tune demo`
# submits it, the dashboard's form starts from it.
EXAMPLE_SPEC = Path(__file__).resolve().parents[1] / "examples" / "lr_sweep.json"
# The demo's second job: TPE warm-started from the first, its best model promoted.
WARM_START_SPEC = EXAMPLE_SPEC.with_name("lr_sweep_warm_start.json")
DEMO_MODEL_NAME = "hcd-tiny-gemma3"
