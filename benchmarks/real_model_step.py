"""LoRA training step time of a gemma-3-270m-shaped model: through the run pipeline a trial
executes (training.run.run_pipeline) vs a plain tunix PeftTrainer loop, same weights, LoRA rank,
batch and sequence length; each in its own process. Prints both step times, the ratio
(pipeline / plain; target <= 1.05) and each process's peak RSS.

    .venv/bin/python benchmarks/real_model_step.py [--steps 8] [--batch 2] [--seq 64]

The weights are random, in the real model's shapes (google/gemma-3-270m's config.json), written
by this script in the exact Hugging Face layout (about 1.1 GB of float32 safetensors under a
temporary folder); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# google/gemma-3-270m's config.json (the fields that set shapes and numerics).
GEMMA3_270M = dict(vocab_size=262_144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
                   num_attention_heads=4, num_key_value_heads=1, head_dim=256, query_pre_attn_scalar=256,
                   sliding_window=512, max_position_embeddings=32_768)
RANK = 8


def _setup(folder: Path, steps: int) -> tuple[Path, Path]:
    from tests.hf_fixtures import write_tiny_checkpoint

    model = write_tiny_checkpoint(folder / "gemma-3-270m-shaped", "gemma3", **GEMMA3_270M)
    data = folder / "datasets" / "bench-v1"
    data.mkdir(parents=True)
    rows = [{"id": i, "prompt": f"Question {i}: what is {i} plus {i}?", "completion": str(2 * i)} for i in range(64)]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:60]))
    (data / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[60:]))
    (data / "manifest.json").write_text(json.dumps({"splits": {"train": "train.jsonl", "eval": "eval.jsonl"}}))
    return model, folder / "datasets"


def pipeline(model: Path, datasets: Path, steps: int, batch: int, seq: int, out: Path) -> dict:
    from training.folders import Folders
    from training.run import run_pipeline

    result = run_pipeline("bench-v1", str(model), {
        "max_steps": steps, "eval_every": steps, "batch_size": batch, "max_seq_length": seq, "lora_rank": RANK,
        "learning_rate": 1e-4}, folders=Folders(datasets=datasets, models=model.parent), run_dir=out)
    return {"step_s": 1 / result.timings["steps_per_s"], "first_step_s": result.timings["first_step_s"]}


def plain(model: Path, datasets: Path, steps: int, batch: int, seq: int, out: Path) -> dict:
    """What a user would write with tunix alone: load, wrap in LoRA, PeftTrainer over fixed batches."""
    import numpy as np
    import optax
    import qwix
    from flax import nnx
    from tunix.sft import hooks, peft_trainer
    from tunix.sft.utils import build_positions_from_mask, make_causal_attn_mask

    from training.hf_models import load_hf_model
    from training.jax_setup import configure_jax

    configure_jax()
    base = load_hf_model(model, json.loads((model / "config.json").read_text()))
    lora = qwix.apply_lora_to_model(base, qwix.LoraProvider(
        module_path=".*qkv_einsum|.*q_einsum|.*kv_einsum|.*attn_vec_einsum|.*gate_proj|.*up_proj|.*down_proj",
        rank=RANK, alpha=16.0), rngs=nnx.Rngs(0), **base.get_model_input())
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, 300, size=(batch, seq)).astype(np.int32)
    mask = np.ones((batch, seq), bool)

    class Times(hooks.TrainingHooks):
        starts: list[float] = []

        def on_train_start(self, ctx): pass
        def on_train_end(self, ctx): pass
        def on_eval_step_start(self, ctx): pass
        def on_eval_step_end(self, ctx, loss): pass
        def on_train_step_end(self, ctx, step, loss): pass

        def on_train_step_start(self, ctx):
            self.starts.append(time.perf_counter())

    def inputs(x):
        real = x.input_tokens >= 0
        return {"input_tokens": x.input_tokens, "input_mask": x.input_mask,
                "positions": build_positions_from_mask(real), "attention_mask": make_causal_attn_mask(real)}

    times = Times()
    trainer = peft_trainer.PeftTrainer(lora, optax.adamw(1e-4), peft_trainer.TrainingConfig(eval_every_n_steps=10**9))
    trainer.with_gen_model_input_fn(inputs).with_training_hooks(times)
    trainer.train(peft_trainer.TrainingInput(input_tokens=tokens, input_mask=mask) for _ in range(steps))
    end = time.perf_counter()
    starts = times.starts + [end]
    return {"step_s": (starts[-1] - starts[1]) / (steps - 1), "first_step_s": starts[1] - starts[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--part", choices=["pipeline", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        folder = Path(args.folder)
        run = pipeline if args.part == "pipeline" else plain
        result = run(folder / "gemma-3-270m-shaped", folder / "datasets", args.steps, args.batch, args.seq,
                     folder / f"run-{args.part}")
        result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        _setup(Path(tmp), args.steps)
        print(f"wrote a gemma-3-270m-shaped checkpoint in {time.perf_counter() - started:.1f}s")
        results = {}
        for part in ("plain", "pipeline", "plain", "pipeline"):  # alternate: these machines are noisy
            out = subprocess.run([sys.executable, __file__, "--part", part, "--folder", tmp, "--steps", str(args.steps),
                                  "--batch", str(args.batch), "--seq", str(args.seq)],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            results.setdefault(part, []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = {part: min(r["step_s"] for r in runs) for part, runs in results.items()}
    rss = {part: max(r["peak_rss_gb"] for r in runs) for part, runs in results.items()}
    print(f"LoRA rank {RANK}, batch {args.batch}, sequence {args.seq}, {args.steps} steps, float32 on CPU")
    for part in ("plain", "pipeline"):
        print(f"{part:<9} step {best[part]:.2f}s (best of 2; first step "
              f"{min(r['first_step_s'] for r in results[part]):.1f}s)  peak RSS {rss[part]:.2f} GB")
    print(f"ratio pipeline / plain: {best['pipeline'] / best['plain']:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
