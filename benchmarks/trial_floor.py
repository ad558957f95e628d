"""What a LoRA sweep costs through the service beyond its training steps and evaluations.

(a) through the service: an 8-trial LoRA sweep of SmolLM2-135M-Instruct on names_chat-v1, one
    trial at a time, from POST to the job's completion seen over HTTP (the untuned baseline is
    scored beside the first trial, as for every job on a pretrained model);
(b) the floor: one process running the same trials' steps and evaluations (and the baseline's
    evaluation) with the model loaded, adapted and every program compiled beforehand, and
    nothing else: no Kafka, no Ray, no checkpoints or run folders.

Prints both wall times, the ratio a/b (goal <= 1.15 on 2 CPU cores), which of its worker's
trials each service trial was (after the first, the worker was warm: Ray Tune reused the
process), and each trial's final training loss in both (they must agree: same seeds, same
programs). Needs the stack: it runs `tunix-tune up` when the API does not answer.

    .venv/bin/python benchmarks/trial_floor.py [--trials 8] [--steps 30] [--service-pack 4] [--api-url URL] [--smoke]

--smoke: 2 trials of 4 steps of the built-in model with LoRA on ungar_hcd-v1 (the code path, not a
figure). --no-service: the floor and the packs only, with learning rates spread over the search
range, on a machine without the stack (a GPU machine: benchmarks/gpu_check.sh; memory is then
the GPU's peak).
Then, in the same run, the same trials packed K at a time (training/packed.py: K slots sharing
one base model in one program; K = 4 and 8) against the floor: trials/hour ratio, peak memory of
the process and its ratio, and how closely the final losses agree. Each floor variant runs in its
own process, so its peak memory is its own. And (c) the same sweep through the service as a
packed job (`"packing": {"max_trials": K}`, K trials at once; --service-pack K, default 4)
against (a): trials/hour ratio and how closely each trial's final loss agrees with (a)'s.
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

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provisioning import processes  # noqa: E402

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"


def job_spec(model_id: str, trials: int, steps: int, smoke: bool) -> dict:
    return {
        "name": "trial floor", "dataset_key": "ungar_hcd-v1" if smoke else "names_chat-v1", "base_model_id": model_id,
        "metric_name": "exact_match", "metric_mode": "max", "num_samples": trials, "max_concurrent_trials": 1,
        "search_space": {"learning_rate": {"type": "loguniform", "min": 1e-4, "max": 1e-3}},
        "fixed_params": {"max_steps": steps, "eval_every": steps, "batch_size": 4, "max_seq_length": 48 if smoke else 64,
                         "warmup_steps": 2, "lora_rank": 4 if smoke else 8},
        "seed": 11,
    }


def packed_job(spec: dict, slots: int) -> dict:
    """The same sweep as a packed job: `slots` trials at once, in one pack."""
    return {**spec, "name": "trial floor, packed", "max_concurrent_trials": slots, "packing": {"max_trials": slots}}


def through_the_service(spec: dict, api_url: str | None) -> tuple[float, list[dict]]:
    if api_url is None and not processes.api_healthy():
        subprocess.run([sys.executable, "-m", "app.cli.main", "up"], check=True, cwd=ROOT)
    with httpx.Client(base_url=api_url or processes.api_url(), timeout=30) as api:
        started = time.perf_counter()
        created = api.post("/api/tuning/jobs", json=spec)
        if created.status_code != 201:
            raise SystemExit(f"the job was refused: {created.text}")
        job_id = created.json()["job_id"]
        api.post(f"/api/tuning/jobs/{job_id}/start").raise_for_status()
        while (job := api.get(f"/api/tuning/jobs/{job_id}").json())["status"] not in ("completed", "failed", "cancelled"):
            time.sleep(0.5)  # how often a user's client would look
        elapsed = time.perf_counter() - started
    if job["status"] != "completed":
        raise SystemExit(f"the job ended {job['status']}: {job['error']}")
    return elapsed, sorted(job["trials"], key=lambda t: t["metrics"].get("worker_trial", 0))


def _loaded(spec: dict):
    from adapters.settings import process_settings
    from training.catalog import resolve_in
    from training.datasets import load_dataset
    from training.jax_setup import configure_jax

    folders = process_settings().training_folders
    configure_jax(folders.jax_cache)
    return resolve_in(spec["base_model_id"], folders), load_dataset(spec["dataset_key"], folders.datasets)


def _score_baseline(worker, source, dataset, max_seq_length: int) -> None:
    """What the service does besides the trials: the untuned model's evaluation."""
    from training.base_model import load_base
    from training.evaluate import evaluate
    from training.train import teacher_forced_loss

    base = worker.base(source, 0, lambda: load_base(source, 0))
    evaluate(base.model, base.tokenizer, dataset.eval, worker)
    teacher_forced_loss(base.model, base.tokenizer, dataset.eval, max_seq_length)


def one_at_a_time(spec: dict, configs: list[dict], with_baseline: bool) -> tuple[float, list[float]]:
    """The floor: the trials' steps and evaluations one after the other in this process,
    everything loaded and compiled first (by an untimed run of the first trial)."""
    from training.base_model import load_base, lora_modules
    from training.evaluate import evaluate
    from training.hyperparams import Hyperparameters
    from training.train import train
    from training.warm import WarmWorker

    source, dataset = _loaded(spec)
    worker = WarmWorker()

    def run(config: dict, workdir: Path) -> float:
        hp = Hyperparameters.from_mapping(config)
        base = worker.base(source, hp.seed, lambda: load_base(source, hp.seed))
        result = train(base.model, base.tokenizer, dataset, hp, lambda _: None, workdir,
                       lora_modules=lora_modules(base.family, hp.lora_targets), worker=worker)
        evaluate(base.model, base.tokenizer, dataset.eval, worker)
        return result.train_loss

    with tempfile.TemporaryDirectory() as tmp:
        run(configs[0], Path(tmp) / "warm-up")
        started = time.perf_counter()
        if with_baseline:
            _score_baseline(worker, source, dataset, spec["fixed_params"]["max_seq_length"])
        losses = [run(config, Path(tmp) / str(n)) for n, config in enumerate(configs)]
        return time.perf_counter() - started, losses


def packed(spec: dict, configs: list[dict], slots: int, with_baseline: bool) -> tuple[float, list[float]]:
    """The same trials as slots of packs of `slots` (training/packed.py), each then evaluated on
    its merged model; compiled first by an untimed one-step pack."""
    from flax import nnx

    from training.base_model import load_base, lora_modules
    from training.evaluate import evaluate
    from training.hyperparams import Hyperparameters
    from training.model import apply_lora, merge_lora
    from training.packed import Pack, pack_model, train_pack
    from training.warm import WarmWorker

    source, dataset = _loaded(spec)
    worker = WarmWorker()
    hps = [Hyperparameters.from_mapping(c) for c in configs]
    base = worker.base(source, hps[0].seed, lambda: load_base(source, hps[0].seed))
    modules = lora_modules(base.family, hps[0].lora_targets)
    initial = {(hp.seed, hp.lora_rank): nnx.split(apply_lora(base.model, hp.lora_rank, hp.lora_alpha, hp.seed, modules),
                                                  nnx.LoRAParam, ...)[1] for hp in hps}
    rank = max(hp.lora_rank for hp in hps)
    pack = Pack(pack_model(base.model, rank, modules), slots, base.tokenizer.pad_id)

    def round_(group: list[Hyperparameters]) -> list[float]:
        results = train_pack(pack, base.tokenizer, dataset, [(hp, initial[hp.seed, hp.lora_rank]) for hp in group])
        for slot, hp in enumerate(group):
            worker.base(source, hp.seed, lambda: load_base(source, hp.seed))  # the weights as loaded
            merge_lora(pack.slot_model(slot), base.model, rank, float(rank))  # its alpha/rank is in the slot's B
            evaluate(base.model, base.tokenizer, dataset.eval, worker)
        return [float(np.mean(r.losses[-hp.eval_every:])) for hp, r in zip(group, results, strict=True)]

    round_([Hyperparameters.from_mapping({**configs[0], "max_steps": 1})])
    started = time.perf_counter()
    if with_baseline:
        _score_baseline(worker, source, dataset, spec["fixed_params"]["max_seq_length"])
    losses = [loss for at in range(0, len(hps), slots) for loss in round_(hps[at:at + slots])]
    return time.perf_counter() - started, losses


def _in_a_process(part: str, spec: dict, configs: list[dict], slots: int, with_baseline: bool) -> dict:
    """One floor variant in its own process: its peak memory is its own."""
    out = subprocess.run(
        [sys.executable, __file__, "--part", part, "--slots", str(slots), "--spec", json.dumps(spec),
         "--configs", json.dumps(configs), *(["--baseline"] if with_baseline else [])],
        capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"the {part} floor failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _part(args) -> None:
    spec, configs = json.loads(args.spec), json.loads(args.configs)
    if args.part == "floor":
        seconds, losses = one_at_a_time(spec, configs, args.baseline)
    else:
        seconds, losses = packed(spec, configs, args.slots, args.baseline)
    from training.jax_setup import device_peak_mb

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "losses": losses, "peak_mb": peak_mb, "peak_device_mb": device_peak_mb()}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--packs", default="4,8", help="pack sizes K to compare with one trial at a time (\"\": none)")
    parser.add_argument("--service-pack", type=int, default=4, help="K of the packed job through the service (0: none)")
    parser.add_argument("--api-url", help="a running stack's API (default: the local stack, started if down)")
    parser.add_argument("--smoke", action="store_true", help="2 trials of 4 steps of the built-in model, packs of 2")
    parser.add_argument("--no-service", action="store_true",
                        help="the floor and the packs alone, no stack (benchmarks/gpu_check.sh on a GPU machine)")
    for hidden in ("--part", "--spec", "--configs"):  # one floor variant, run in its own process
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--slots", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        return _part(args)
    trials, steps = (2, 4) if args.smoke else (args.trials, args.steps)
    packs = [2] if args.smoke else [int(k) for k in args.packs.split(",") if k]
    model_id = "tiny-gemma3" if args.smoke else SMOLLM2
    if not args.smoke:
        from adapters.settings import process_settings
        from app.cli.demo_model import place_smollm2

        place_smollm2(process_settings().training_folders.models)
    spec = job_spec(model_id, trials, steps, args.smoke)

    if args.no_service:  # the learning rates a random search would draw, spread over its range
        done = []
        configs = [{**spec["fixed_params"], "learning_rate": float(lr)} for lr in np.geomspace(1e-4, 1e-3, trials)]
    else:
        service_s, done = through_the_service(spec, args.api_url)
        configs = [{**spec["fixed_params"], **{k: t["params"][k] for k in spec["search_space"]}} for t in done]
    floor = _in_a_process("floor", spec, configs, 1, not args.smoke)
    print(f"{trials} LoRA trials of {model_id} on {spec['dataset_key']}, {steps} steps each, batch 4 x seq "
          f"{spec['fixed_params']['max_seq_length']}, one at a time")
    if done:
        print(f"(a) through the service: {service_s:8.1f} s")
    print(f"(b) the floor:           {floor['seconds']:8.1f} s   peak memory {_memory(floor)}")
    for trial, floor_loss in zip(done, floor["losses"] if done else [], strict=True):
        loss = trial["metrics"].get("train_loss")
        print(f"trial {trial['trial_id']}: worker trial {trial['metrics'].get('worker_trial', 0):.0f}, "
              f"compile {trial['metrics'].get('compile_s', 0):.1f} s, final train loss {loss:.6f} "
              f"(floor {floor_loss:.6f}, difference {abs(loss - floor_loss):.2e})")
    if done:
        print(f"ratio service / floor: {service_s / floor['seconds']:.3f}   goal <= 1.15")
    if done and (slots := 2 if args.smoke else args.service_pack):
        packed_s, packed_trials = through_the_service(packed_job(spec, slots), args.api_url)
        alone = {t["params"]["learning_rate"]: t["metrics"]["train_loss"] for t in done}
        worst = max(abs(t["metrics"]["train_loss"] - alone[t["params"]["learning_rate"]]) / abs(alone[t["params"]["learning_rate"]])
                    for t in packed_trials)
        print(f"(c) through the service, packed K={slots}: {packed_s:.1f} s, trials/hour ratio packed/unpacked "
              f"{service_s / packed_s:.3f}, final losses agree with (a) within {worst:.1e} (relative)")
    for slots in packs:
        pack = _in_a_process("packed", spec, configs, slots, not args.smoke)
        worst = max(abs(a - b) / abs(b) for a, b in zip(pack["losses"], floor["losses"], strict=True))
        print(f"packed K={slots}: {pack['seconds']:.1f} s, trials/hour ratio packed/unpacked "
              f"{floor['seconds'] / pack['seconds']:.3f}, peak memory {_memory(pack)} "
              f"(ratio {_peak(pack) / _peak(floor):.3f}), final losses agree within {worst:.1e} (relative)")


def _peak(part: dict) -> float:
    """The GPU's peak use where there is one, else the process's peak RSS."""
    return part["peak_device_mb"] or part["peak_mb"]


def _memory(part: dict) -> str:
    return f"{part['peak_device_mb']:.0f} MB on the GPU" if part["peak_device_mb"] else f"{part['peak_mb']:.0f} MB"


if __name__ == "__main__":
    main()
