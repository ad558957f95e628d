"""Every script in benchmarks/ at its smallest size, so none can rot unnoticed: each runs as a user
runs it (its own process, on this suite's Kafka and PostgreSQL where it needs them) and must print
each line it promises, with numbers that make sense. No timing is asserted: these machines are
noisy, and the scripts print ratios for people to read. A migration that changes a table the
projector writes breaks projector_throughput's raw baseline until the benchmark follows; this
test says so."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"([0-9][0-9,]*(?:\.[0-9]+)?)"


def _run(*args: str, env: dict | None = None, timeout: float = 600) -> str:
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                         env={**os.environ, **(env or {})})
    assert out.returncode == 0, f"{args[0]} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return out.stdout


def _numbers(pattern: str, report: str, count: int = 1) -> list[float]:
    found = re.findall(pattern, report, re.M)
    assert len(found) == count, f"{pattern!r} matched {len(found)} times, not {count}, in:\n{report}"
    flat = [value for match in found for value in (match if isinstance(match, tuple) else (match,))]
    return [float(value.replace(",", "")) for value in flat]


def _servers(stack) -> dict:
    return {"KAFKA_BOOTSTRAP_SERVERS": stack.kafka, "DATABASE_URL": stack.database_url}


def test_projector_throughput_inserts_exactly_what_the_projector_writes(stack):
    report = _run("benchmarks/projector_throughput.py", "--events", "2000", env=_servers(stack))
    assert all(rate > 0 for rate in _numbers(rf"^projector \(Kafka -> read model\): +{NUMBER} events/s$", report))
    ratios = _numbers(rf"^raw asyncpg .*: +{NUMBER} events/s +ratio projector/raw {NUMBER}$", report, count=2)
    assert all(value > 0 for value in ratios), report


def test_tuner_startup_prints_its_ratios(stack):
    report = _run("benchmarks/tuner_startup.py", "--events", "2000", env=_servers(stack))
    start_up, memory = _numbers(rf"^ratio restart / empty: start-up {NUMBER}, memory {NUMBER}", report)
    assert start_up > 0 and memory > 0, report


def test_gpu_sweep_runs_its_trials_through_the_tuners_experiment_code_on_the_cpu():
    report = _run("benchmarks/gpu_sweep.py", "--smoke", env={"JAX_PLATFORMS": "cpu"})
    assert "sweep: JobCompleted" in report, report
    ratios = _numbers(rf"^trial \S+: {NUMBER} tokens/s through the service, {NUMBER} plain \(ratio {NUMBER}",
                      report, count=4)
    assert all(value > 0 for value in ratios), report


def test_run_quality_prints_each_bar():
    report = _run("benchmarks/run_quality.py", "--smoke")
    (score,) = _numbers(rf"^lr=3e-3: score {NUMBER} after", report)
    assert 0 <= score <= 100
    _, _, ratio = _numbers(rf"^compile .*: first run {NUMBER}s, second run .* {NUMBER}s, ratio {NUMBER}", report)
    assert ratio > 0 and _numbers(rf"^peak RSS of one run: {NUMBER} MB", report)[0] > 0


def test_e2e_overhead_compares_plain_ray_tune_with_the_service(tuning_stack):
    report = _run("benchmarks/e2e_overhead.py", "--smoke", "--rounds", "1", "--api-url", tuning_stack["url"])
    (median, _, _) = _numbers(rf"^ratio b/a over 1 rounds: median {NUMBER} \(min {NUMBER}, max {NUMBER}\)", report)
    assert median > 0, report


def test_real_model_step_runs_every_part_on_smollm2s_weights(smollm2_converted, tmp_path):
    # names_chat-v1 cut to 8 training and 4 held-out chats: the pipeline part answers 4 questions, not 30.
    source, cut = ROOT / "datasets" / "names_chat-v1", tmp_path / "names_chat-v1"
    cut.mkdir()
    (cut / "manifest.json").write_text((source / "manifest.json").read_text())
    for split, lines in (("train", 8), ("eval", 4)):
        kept = (source / f"{split}.jsonl").read_text().splitlines()[:lines]
        (cut / f"{split}.jsonl").write_text("\n".join(kept) + "\n")
    report = _run("benchmarks/real_model_step.py", "--steps", "2", "--batch", "1", "--seq", "64", "--repeats", "1",
                  "--model-folder", str(smollm2_converted.folder), "--datasets-dir", str(tmp_path))
    for part in ("pipeline", "plain", "plain-bf16"):
        step, tokens, loss = _numbers(rf"^{part} +step {NUMBER}s \({NUMBER} tokens/s.*held-out loss {NUMBER}", report)
        assert step > 0 and tokens > 0 and loss > 0, report
    assert _numbers(rf"^ratio pipeline / plain: {NUMBER} \(target <= 1.05\)$", report)[0] > 0
    assert _numbers(rf"^ratio bfloat16 / float32 step: {NUMBER}; held-out loss", report)[0] > 0


def test_every_benchmark_script_has_a_smoke_test_here():
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem != "__init__"}
    tested = set(re.findall(r'"benchmarks/(\w+)\.py"', Path(__file__).read_text()))
    assert scripts == tested, f"without a smoke test: {sorted(scripts - tested)}"


def test_trial_floor_compares_the_service_with_the_floor_and_the_losses_agree(tuning_stack):
    report = _run("benchmarks/trial_floor.py", "--smoke", "--api-url", tuning_stack["url"])
    assert _numbers(rf"^ratio service / floor: {NUMBER}", report)[0] > 0, report
    trials = re.findall(rf"^trial \S+: worker trial (\d+), .* final train loss {NUMBER} \(floor {NUMBER}, ", report, re.M)
    assert len(trials) == 2 and all(float(service) == float(floor) for _, service, floor in trials), report
    first, second = sorted(int(worker) for worker, _, _ in trials)
    assert second == first + 1, report  # Ray Tune handed the second trial the first one's warm worker
    packed = re.findall(rf"^packed K=2: {NUMBER} s, trials/hour ratio packed/unpacked {NUMBER}, peak memory {NUMBER} MB "
                        rf"\(ratio {NUMBER}\), final losses agree within (\S+) \(relative\)$", report, re.M)
    assert len(packed) == 1 and float(packed[0][1]) > 0 and float(packed[0][4]) < 1e-3, report
    service = re.findall(rf"^\(c\) through the service, packed K=2: {NUMBER} s, trials/hour ratio packed/unpacked "
                         rf"{NUMBER}, final losses agree with \(a\) within (\S+) \(relative\)$", report, re.M)
    assert len(service) == 1 and float(service[0][1]) > 0 and float(service[0][2]) < 1e-3, report


def test_trial_floor_without_the_service_compares_packs_with_the_floor():
    report = _run("benchmarks/trial_floor.py", "--smoke", "--no-service")
    assert "through the service" not in report and _numbers(rf"^\(b\) the floor: +{NUMBER} s", report)[0] > 0, report
    assert re.search(r"^packed K=2: .* final losses agree within \S+ \(relative\)$", report, re.M), report
