"""The HTTP gateway (FastAPI) and the `tunix-tune` CLI: where users and other systems come in."""

from pathlib import Path

# The example job (the seed's sweep on the built-in dataset and model): `tunix-tune demo`
# submits it, the dashboard's form starts from it.
EXAMPLE_SPEC = Path(__file__).resolve().parents[1] / "examples" / "lr_sweep.json"
# `tunix-tune demo --tiny`'s second job: TPE warm-started from the first, the lineage's best promoted.
WARM_START_SPEC = EXAMPLE_SPEC.with_name("lr_sweep_warm_start.json")
TINY_MODEL_NAME = "hcd-tiny-gemma3"
# `make demo`: LoRA on SmolLM2-135M-Instruct (a real pretrained LLM) against its untuned baseline.
DEMO_SPEC = EXAMPLE_SPEC.with_name("smollm2_names_lora.json")
DEMO_MODEL_NAME = "smollm2-names"
# The held-out question the demo's promoted model is tried on (names_chat-v1's system message).
DEMO_SYSTEM = "Reply with the full name of the person, nothing else."
DEMO_PROMPT = "Who is the person in this sentence? The prize for the best short story went to Lars Nilsson."
