"""What the service adds on top of Ray Tune: the same 6-trial sweep run (a) as a plain
`Tuner.fit()` script with the same trainable and settings, and (b) through the service
(POST -> start -> completion seen over HTTP), one after the other in one run.

Prints both wall times, the ratio b/a, and every trial's compile time. Needs the stack:
it runs `tunix-tune up` when the API does not answer.

    .venv/bin/python benchmarks/e2e_overhead.py [--rounds 2] [--api-url URL] [--smoke]

--api-url measures (b) on a stack that already runs there instead of the local one; --smoke runs a
2-trial, 10-step sweep once (the code path, not a figure).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provisioning import kafka, postgres, processes  # noqa: E402
from schemas.job_spec import JobSpec  # noqa: E402

SPEC = {
    "name": "overhead", "dataset_key": "ungar_hcd-v1", "base_model_id": "tiny-gemma3",
    "metric_name": "score", "metric_mode": "max", "num_samples": 1, "max_concurrent_trials": 2,
    "search_algorithm": "grid", "fixed_params": {"max_steps": 150, "eval_every": 50},
    "search_space": {"learning_rate": {"type": "grid", "values": [1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3]}},
}


SMOKE = {**SPEC, "fixed_params": {"max_steps": 10, "eval_every": 10},
         "search_space": {"learning_rate": {"type": "grid", "values": [1e-3, 3e-3]}}}


def plain_tuner_fit(spec_body: dict) -> tuple[float, list[float]]:
    import os

    import ray
    from ray import tune

    from consumers.tuner.experiment import checkpoint_config, trial_inputs
    from service.search.searchers import param_space
    from consumers.tuner.trainable import train_trial
    from training.folders import Folders

    spec = JobSpec.model_validate(spec_body)
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as storage:
            started = time.perf_counter()
            grid = tune.Tuner(
                tune.with_parameters(train_trial, **trial_inputs(spec, Path(storage) / "plain", Folders())),
                # Plain Ray Tune: its own grid search and concurrency limit (the service's steered
                # searcher acts only for a job it runs).
                param_space=param_space(spec), tune_config=tune.TuneConfig(
                    metric=spec.metric_name, mode=spec.metric_mode, num_samples=spec.num_samples,
                    max_concurrent_trials=spec.max_concurrent_trials, reuse_actors=True),
                run_config=tune.RunConfig(name="plain", storage_path=storage, verbose=0, checkpoint_config=checkpoint_config(spec)),
            ).fit()
            elapsed = time.perf_counter() - started
        return elapsed, [r.metrics["compile_s"] for r in grid]
    finally:
        ray.shutdown()


def stack_cpu_s() -> dict[str, float]:
    """CPU seconds used so far by each part of the stack: what the service adds besides the
    trials (the tuner counts without its Ray workers, Kafka and PostgreSQL with theirs)."""
    import psutil

    def cpu(pid: int | None, children: bool) -> float:
        if pid is None:
            return 0.0
        try:
            procs = [psutil.Process(pid)]
            procs += procs[0].children(recursive=True) if children else []
            return sum(sum(p.cpu_times()[:2]) for p in procs)
        except psutil.Error:
            return 0.0
    return {
        "api": cpu(processes.pid("api"), False), "projector": cpu(processes.pid("projector"), False),
        "tuner": cpu(processes.pid("tuner"), False),
        "kafka": cpu(kafka.pid(), True), "postgres": cpu(postgres.pid(), True),
    }


def through_the_service(spec_body: dict, api_url: str | None) -> tuple[float, list[float], dict[str, float]]:
    if api_url is None and not processes.api_healthy():
        subprocess.run([sys.executable, "-m", "app.cli.main", "up"], check=True, cwd=ROOT)
    cpu_before = stack_cpu_s()
    with httpx.Client(base_url=api_url or processes.api_url(), timeout=30) as api:
        started = time.perf_counter()
        job_id = api.post("/api/tuning/jobs", json=spec_body).json()["job_id"]
        api.post(f"/api/tuning/jobs/{job_id}/start").raise_for_status()
        while (job := api.get(f"/api/tuning/jobs/{job_id}").json())["status"] not in ("completed", "failed", "cancelled"):
            time.sleep(0.5)  # how often a user's client would look; each look costs the API a query
        elapsed = time.perf_counter() - started
    cpu_used = {k: v - cpu_before[k] for k, v in stack_cpu_s().items()}
    if job["status"] != "completed":
        raise SystemExit(f"the job ended {job['status']}: {job['error']}")
    return elapsed, [t["metrics"]["compile_s"] for t in job["trials"]], cpu_used


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2, help="(a, b) pairs, alternated; noise evens out")
    parser.add_argument("--api-url", help="a running stack's API for (b) (default: the local stack, started if down)")
    parser.add_argument("--smoke", action="store_true", help="a 2-trial, 10-step sweep: the code path, not a figure")
    args = parser.parse_args()
    rounds, spec = args.rounds, SMOKE if args.smoke else SPEC
    ratios = []
    for round_ in range(1, rounds + 1):
        plain_s, plain_compiles = plain_tuner_fit(spec)
        service_s, service_compiles, stack_cpu = through_the_service(spec, args.api_url)
        ratios.append(service_s / plain_s)
        print(f"round {round_}:")
        print(f"  (a) plain Tuner.fit():      {plain_s:7.1f} s   trial compile s: {', '.join(f'{c:.2f}' for c in plain_compiles)}")
        print(f"  (b) through the service:    {service_s:7.1f} s   trial compile s: {', '.join(f'{c:.2f}' for c in service_compiles)}")
        print("  stack CPU during (b), s: " + ", ".join(f"{k} {v:.1f}" for k, v in stack_cpu.items()))
        print(f"  ratio b/a: {ratios[-1]:.3f}")
    print(f"ratio b/a over {rounds} rounds: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})   target <= 1.05")


if __name__ == "__main__":
    main()
