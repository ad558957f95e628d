"""GPU trials, measured: a 4-trial LoRA sweep of a gemma-3-270m-shaped model (random weights in
the real shapes) run by the tuner's experiment code on Ray, each trial holding a quarter of the
GPU, against the same steps in a plain tunix loop on the whole GPU. Prints tokens/s per trial
for both, the ratio (target >= 0.95) and each trial's peak GPU memory.

    .venv/bin/python benchmarks/gpu_sweep.py          (benchmarks/gpu_check.sh installs and runs it)

The sweep runs through consumers/tuner/runner.run_experiment, the code the tuner runs for a
started job, with the job's events collected in memory instead of sent to Kafka: on a machine
that has a GPU but no Kafka or PostgreSQL this still exercises every GPU-side part of a job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.real_model_step import GEMMA3_270M, _setup  # noqa: E402

STEPS, BATCH, SEQ = 30, 8, 128


def main() -> None:
    import jax
    import ray

    from consumers.tuner.runner import run_experiment
    from producers.job_run import JobRun
    from schemas.job_spec import JobSpec
    from training.folders import Folders

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if not gpus:
        raise SystemExit(f"no GPU visible to JAX (devices: {jax.devices()}); install the extra: pip install '.[cuda]'")
    with tempfile.TemporaryDirectory() as tmp:
        model, datasets = _setup(Path(tmp), STEPS)
        plain = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "real_model_step.py"), "--part", "plain",
                                "--folder", tmp, "--steps", str(STEPS), "--batch", str(BATCH), "--seq", str(SEQ)],
                               capture_output=True, text=True, check=True, cwd=ROOT,
                               env={**os.environ, "JAX_PLATFORMS": "cuda"})
        plain_step = json.loads(plain.stdout.strip().splitlines()[-1])["step_s"]
        spec = JobSpec.model_validate({
            "name": "gpu sweep", "dataset_key": "bench-v1", "base_model_id": str(model), "metric_name": "eval_loss",
            "metric_mode": "min", "num_samples": 1, "max_concurrent_trials": 4,
            "search_space": {"learning_rate": {"type": "grid", "values": [1e-4, 2e-4, 4e-4, 8e-4]}},
            "fixed_params": {"max_steps": STEPS, "eval_every": STEPS, "batch_size": BATCH, "max_seq_length": SEQ},
            "resources_per_trial": {"cpu": 1, "gpu": 0.25}})
        ray.init(include_dashboard=False, log_to_driver=False)
        events = []
        started = time.perf_counter()
        with JobRun.open(uuid.uuid4(), events.append, spec) as run:
            outcome = run_experiment(run, (), Path(tmp) / "tuning", Folders(datasets=datasets, models=model.parent))
        print(f"sweep: {outcome.type} in {time.perf_counter() - started:.0f}s")
        ray.shutdown()
        for manifest_path in sorted((Path(tmp) / "tuning").glob("*/runs/*/manifest.json")):
            m = json.loads(manifest_path.read_text())
            service = BATCH * SEQ * m["timings"]["steps_per_s"]
            baseline = BATCH * SEQ / plain_step
            print(f"trial {manifest_path.parent.name}: {service:,.0f} tokens/s through the service, {baseline:,.0f} "
                  f"plain (ratio {service / baseline:.3f}, target >= 0.95 with 4 trials sharing the GPU: "
                  f"compare per-GPU totals), peak GPU memory {m['timings']['peak_device_mb']:.0f} MB")
    print(f"shape: {GEMMA3_270M['num_hidden_layers']} layers, hidden {GEMMA3_270M['hidden_size']}, "
          f"batch {BATCH}, sequence {SEQ}, {STEPS} steps, LoRA rank 8")


if __name__ == "__main__":
    main()
