"""GPU trials, measured: a 4-trial LoRA sweep of a gemma-3-270m-shaped model (random weights in
the real shapes) run by the tuner's experiment code on Ray, each trial holding a quarter of the
GPU, against the same steps in a plain tunix loop on the whole GPU. Prints tokens/s per trial
for both, the ratio (target >= 0.95) and each trial's peak GPU memory.

    .venv/bin/python benchmarks/gpu_sweep.py          (benchmarks/gpu_check.sh installs and runs it)
    .venv/bin/python benchmarks/gpu_sweep.py --smoke  (tiny shapes on the CPU: the code path, not a figure)

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

# google/gemma-3-270m's config.json (the fields that set shapes and numerics).
GEMMA3_270M = dict(vocab_size=262_144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
                   num_attention_heads=4, num_key_value_heads=1, head_dim=256, query_pre_attn_scalar=256,
                   sliding_window=512, max_position_embeddings=32_768)
STEPS, BATCH, SEQ = 30, 8, 128
SMOKE_STEPS, SMOKE_BATCH, SMOKE_SEQ = 2, 1, 64


def _setup(folder: Path, smoke: bool) -> tuple[Path, Path]:
    """A gemma-3-270m-shaped checkpoint (random weights; the fixture's tiny shapes with --smoke) and a
    small prompt/completion dataset, bench-v1."""
    from tests.support.hf_fixtures import write_tiny_checkpoint

    model = write_tiny_checkpoint(folder / "gemma-3-270m-shaped", "gemma3", **({} if smoke else GEMMA3_270M))
    data = folder / "datasets" / "bench-v1"
    data.mkdir(parents=True)
    rows = [{"id": i, "prompt": f"Question {i}: what is {i} plus {i}?", "completion": str(2 * i)} for i in range(64)]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:60]))
    (data / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[60:]))
    (data / "manifest.json").write_text(json.dumps({"splits": {"train": "train.jsonl", "eval": "eval.jsonl"}}))
    return model, folder / "datasets"


def main() -> None:
    import jax
    import ray

    from consumers.tuner.runner import run_experiment
    from producers.job_run import JobRun
    from schemas.job_spec import JobSpec
    from training.folders import Folders

    smoke = "--smoke" in sys.argv[1:]
    steps, batch, seq = (SMOKE_STEPS, SMOKE_BATCH, SMOKE_SEQ) if smoke else (STEPS, BATCH, SEQ)
    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if not gpus and not smoke:
        raise SystemExit(f"no GPU visible to JAX (devices: {jax.devices()}); install the extra: pip install '.[cuda]'")
    with tempfile.TemporaryDirectory() as tmp:
        model, datasets = _setup(Path(tmp), smoke)
        plain = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "real_model_step.py"), "--part", "plain",
                                "--model-folder", str(model), "--dataset", "bench-v1", "--datasets-dir", str(datasets),
                                "--steps", str(steps), "--batch", str(batch), "--seq", str(seq)],
                               capture_output=True, text=True, check=True, cwd=ROOT,
                               env={**os.environ, "JAX_PLATFORMS": "cpu" if smoke else "cuda"})
        plain_step = json.loads(plain.stdout.strip().splitlines()[-1])["step_s"]
        spec = JobSpec.model_validate({
            "name": "gpu sweep", "dataset_key": "bench-v1", "base_model_id": str(model), "metric_name": "eval_loss",
            "metric_mode": "min", "num_samples": 1, "max_concurrent_trials": 4,
            "search_space": {"learning_rate": {"type": "grid", "values": [1e-4, 2e-4, 4e-4, 8e-4]}},
            "fixed_params": {"max_steps": steps, "eval_every": steps, "batch_size": batch, "max_seq_length": seq},
            "resources_per_trial": {"cpu": 1, "gpu": 0 if smoke else 0.25}})
        ray.init(include_dashboard=False, log_to_driver=False)
        events = []
        started = time.perf_counter()
        with JobRun.open(uuid.uuid4(), events.append, spec) as run:
            outcome = run_experiment(run, (), Path(tmp) / "tuning", Folders(datasets=datasets, models=model.parent))
        print(f"sweep: {outcome.type} in {time.perf_counter() - started:.0f}s")
        ray.shutdown()
        for manifest_path in sorted((Path(tmp) / "tuning").glob("*/runs/*/manifest.json")):
            m = json.loads(manifest_path.read_text())
            service = batch * seq * m["timings"]["steps_per_s"]
            baseline = batch * seq / plain_step
            peak = m["timings"]["peak_device_mb"]
            print(f"trial {manifest_path.parent.name}: {service:,.0f} tokens/s through the service, {baseline:,.0f} "
                  f"plain (ratio {service / baseline:.3f}, target >= 0.95 with 4 trials sharing the GPU: "
                  f"compare per-GPU totals), peak GPU memory "
                  + (f"{peak:.0f} MB" if peak is not None else "none (CPU)"))
    shape = "the tiny fixture's shapes (--smoke, CPU)" if smoke else (
        f"{GEMMA3_270M['num_hidden_layers']} layers, hidden {GEMMA3_270M['hidden_size']}")
    print(f"shape: {shape}, batch {batch}, sequence {seq}, {steps} steps, LoRA rank 8")


if __name__ == "__main__":
    main()
