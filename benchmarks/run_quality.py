"""Quality bars of the run pipeline on these CPU cores, default tiny model on ungar_hcd-v1.

Each run is its own `tunix-tune run --json` process, as a trial would be:
  1. a good configuration (learning_rate 3e-3): its score, and the training time it took;
  2. learning_rate 1e-6: it must not learn (score stays near the majority class);
  3. compile reuse: with an empty compilation cache, run 1 compiles; a second run with the same
     shapes and another learning rate, in a fresh process, should compile a fraction of that;
  4. peak memory (RSS) of each run.

    .venv/bin/python benchmarks/run_quality.py [--smoke]   (--smoke: 10 steps a run, the code path only)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# --smoke: each run 10 steps (the code path and the report; the bars are not meant to hold).
SMOKE_SETS = ("max_steps=10", "eval_every=10")


def run(cache: str, *sets: str) -> dict:
    command = [sys.executable, "-m", "app.cli.main", "run", "--dataset", "ungar_hcd-v1",
               "--model", "tiny-gemma3", "--json", *[a for s in sets for a in ("--set", s)]]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TUNIX_JAX_CACHE_DIR": cache})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def main() -> None:
    smoke = SMOKE_SETS if "--smoke" in sys.argv[1:] else ()
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as artifacts:
        os.environ["TUNIX_ARTIFACTS_DIR"] = artifacts
        good = run(cache, "learning_rate=3e-3", *smoke)
        other_lr = run(cache, "learning_rate=1e-3", *smoke)
        tiny_lr = run(cache, "learning_rate=1e-6", *smoke)
    t = good["timings"]
    print(f"lr=3e-3: score {good['metrics']['score']:.1f} after {t['train_s']:.1f}s of training "
          f"(compile {t['compile_s']:.1f}s, {t['steps_per_s']:.1f} steps/s)   bar: score >= 90 within 60 s")
    print(f"lr=1e-6: score {tiny_lr['metrics']['score']:.1f}   bar: <= 60")
    ratio = other_lr["timings"]["compile_s"] / good["timings"]["compile_s"]
    print(f"compile (XLA, or load from the cache): first run {good['timings']['compile_s']:.2f}s, second run "
          f"(lr=1e-3, fresh process) {other_lr['timings']['compile_s']:.2f}s, ratio {ratio:.2f}   bar: <= 0.20")
    first_step = other_lr["timings"]["first_step_s"] / good["timings"]["first_step_s"]
    print(f"first step incl. tracing and lowering (no cache can skip those): {good['timings']['first_step_s']:.2f}s"
          f" vs {other_lr['timings']['first_step_s']:.2f}s, ratio {first_step:.2f}")
    peak = max(r["timings"]["peak_rss_mb"] for r in (good, other_lr, tiny_lr))
    print(f"peak RSS of one run: {peak:.0f} MB   bar: <= 1536 MB")


if __name__ == "__main__":
    main()
