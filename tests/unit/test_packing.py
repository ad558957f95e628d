"""Whether a job packs its trials, how many to a pack, at which rank, and why not
(consumers/tuner/packing.py); and the packing field's rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from consumers.tuner.packing import plan_packing
from schemas.job_spec import JobSpec
from tests.support.specs import example_spec

LR = {"learning_rate": {"type": "loguniform", "min": 1e-4, "max": 1e-2}}


def _spec(packing={"max_trials": "auto"}, space=None, **overrides) -> JobSpec:
    """A LoRA job (rank 4 unless the space searches lora_rank) that asks for packing."""
    space = space or LR
    fixed = overrides.pop("fixed_params", {} if "lora_rank" in space else {"lora_rank": 4})
    return JobSpec.model_validate(example_spec(
        packing=packing, max_concurrent_trials=overrides.pop("max_concurrent_trials", 8), search_space=space,
        fixed_params=fixed, **overrides))


def test_no_packing_asked_no_plan():
    assert plan_packing(_spec(packing=None), built_in=True) is None


def test_auto_packs_four_on_cpu_eight_on_a_gpu_never_more_than_run_at_once():
    assert plan_packing(_spec(), built_in=True).slots == 4
    assert plan_packing(_spec(resources_per_trial={"cpu": 1, "gpu": 1}), built_in=True).slots == 8
    assert plan_packing(_spec(max_concurrent_trials=3), built_in=True).slots == 3
    plan = plan_packing(_spec({"max_trials": 6}), built_in=False)
    assert (plan.slots, plan.rank, plan.packed) == (6, 4, True)
    assert plan.reason.startswith("trials run 6 to a pack")


def test_the_pack_is_built_for_the_largest_rank_its_trials_can_take():
    space = {**LR, "lora_rank": {"type": "choice", "values": [2, 16, 8]}}
    assert plan_packing(_spec(space=space), built_in=False).rank == 16
    spec = JobSpec.model_validate(example_spec(packing={"max_trials": 2}, max_concurrent_trials=2, search_space=LR))
    assert plan_packing(spec, built_in=False).rank == 8  # a checkpoint's default LoRA rank


@pytest.mark.parametrize(("change", "built_in", "why"), [
    ({"space": {**LR, "batch_size": {"type": "choice", "values": [8, 16]}}}, False, "varies batch_size"),
    ({"space": {**LR, "max_seq_length": {"type": "grid", "values": [32, 64]}}}, False, "varies max_seq_length"),
    ({"space": {**LR, "lora_targets": {"type": "choice", "values": ["all", "mlp"]}}}, False, "varies lora_targets"),
    ({"space": {**LR, "lora_rank": {"type": "choice", "values": [0, 4]}}}, False, "can be 0"),
    ({"space": {**LR, "lora_rank": {"type": "uniform", "min": 1, "max": 8}}}, False, "not a fixed value"),
    ({"space": {**LR, "seed": {"type": "randint", "min": 0, "max": 3}}}, True, "seed"),
    ({"max_concurrent_trials": 1}, False, "max_concurrent_trials is 1"),
])
def test_a_job_that_cannot_pack_runs_unpacked_and_says_why(change, built_in, why):
    change = dict(change)
    plan = plan_packing(_spec(space=change.pop("space", None), **change), built_in=built_in)
    assert not plan.packed and plan.reason.startswith("not packed: ") and why in plan.reason, plan.reason


def test_the_built_in_model_without_a_lora_rank_is_fully_fine_tuned_so_not_packed():
    spec = JobSpec.model_validate(example_spec(packing={"max_trials": 2}, max_concurrent_trials=2, search_space=LR))
    assert "full fine-tuning" in plan_packing(spec, built_in=True).reason


def test_a_pack_that_would_not_fit_in_memory_shrinks_to_the_most_slots_that_do():
    asked = []

    def fits(slots, rank, batch_size, seq_len):
        asked.append((slots, rank, batch_size, seq_len))
        return slots <= 3
    spec = _spec({"max_trials": 6}, fixed_params={"lora_rank": 4, "batch_size": 8, "max_seq_length": 64})
    plan = plan_packing(spec, built_in=False, fits=fits)
    assert (plan.slots, plan.rank) == (3, 4) and "a pack of 6 would not fit in memory" in plan.reason, plan.reason
    assert asked == [(6, 4, 8, 64), (5, 4, 8, 64), (4, 4, 8, 64), (3, 4, 8, 64)]
    plan = plan_packing(spec, built_in=False, fits=lambda *pack: False)
    assert not plan.packed and "a pack of two trials at LoRA rank 4" in plan.reason and "memory" in plan.reason


def test_a_packs_memory_counts_one_base_and_each_slots_batch_and_adapters():
    from training.memory import estimate

    smollm2 = {"parameters": 134_515_008, "vocab": 49152, "hidden": 576, "layers": 30, "batch_size": 4,
               "seq_len": 64, "machine_bytes": 24 * 2**30}
    one, four = estimate(**smollm2, lora_rank=8), estimate(**smollm2, lora_rank=8, slots=4)
    base = 4 * smollm2["parameters"]
    assert four.lora_bytes - base == 4 * (one.lora_bytes - base) and four.full_bytes == one.full_bytes
    wide = estimate(**smollm2, lora_rank=1024)
    assert wide.lora_bytes - one.lora_bytes == 16 * (1024 - 8) * 20 * 576 * 30  # adapters, gradients, moments
    assert estimate(**{**smollm2, "batch_size": 64, "seq_len": 1024}, slots=16).fits_lora is False


@pytest.mark.parametrize("max_trials", [1, 17, 0, "four", 2.5, True])
def test_max_trials_is_auto_or_two_to_sixteen(max_trials):
    with pytest.raises(ValidationError) as refused:
        _spec({"max_trials": max_trials})
    assert any(error["loc"][:2] == ("packing", "max_trials") for error in refused.value.errors()), refused.value


def test_jobs_watch_shows_which_slot_of_the_pack_each_trial_holds():
    import io

    from rich.console import Console

    from app.cli.watch import render

    def trial(trial_id, status, **metrics):
        return {"trial_id": trial_id, "status": status, "params": {"learning_rate": 0.01}, "iteration": 1,
                "metrics": metrics, "reason": None}

    job = {"name": "packed", "status": "running", "metric_name": "eval_loss", "metric_mode": "min", "job_id": "j",
           "num_samples": 3, "spec": {"search_space": LR}, "trials": [
               trial("t1", "running", eval_loss=1.5, pack_slot=0, pack_slots=2),
               trial("t2", "running", eval_loss=1.2, pack_slot=1, pack_slots=2), trial("t3", "pending")]}
    out = io.StringIO()
    Console(file=out, width=200).print(render(job, []))
    rows = {line.split()[0]: line for line in out.getvalue().splitlines() if line.strip().startswith("t")}
    assert "slot" in out.getvalue()
    assert "0/2" in rows["t1"] and "1/2" in rows["t2"] and "—" in rows["t3"]
    del job["trials"][:2]
    unpacked = io.StringIO()
    Console(file=unpacked, width=200).print(render(job, []))
    assert "slot" not in unpacked.getvalue()  # an unpacked job has no slot column
