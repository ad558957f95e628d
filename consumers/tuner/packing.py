"""Whether a job's trials run packed, how many to a pack, and at which LoRA rank; or why not.

A pack (training/packed.py) holds trials that share one frozen base model and one compiled
program: LoRA trials (lora_rank >= 1) of the same base, dataset, LoRA targets, batch size and
sequence length. The pack is built at the largest rank the job's trials can take (smaller
ranks are zero-padded, which is exact), so that rank must be known before the first trial.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemas.job_spec import JobSpec
from schemas.search_space import Choice, Grid, RandInt
from training.hyperparams import PRETRAINED_LORA_RANK, Hyperparameters

# Slots of an "auto" pack: on CPU the matmuls of K trials are K times the work and only the
# shared reads of the base are saved (4 measured best, benchmarks/trial_floor.py); a GPU has
# room for more.
AUTO_SLOTS_CPU = 4
AUTO_SLOTS_GPU = 8
# What the trials of one pack must share (training/packed.pack_key), besides base and dataset.
SHARED_SHAPE = ("batch_size", "max_seq_length", "lora_targets")


Fits = Callable[[int, int, int, int], bool]  # (slots, rank, batch_size, max_seq_length) -> fits in memory


@dataclass(frozen=True)
class PackPlan:
    slots: int  # trials per pack; 0: the job runs unpacked
    rank: int  # the pack's LoRA rank: the largest its trials can take
    reason: str  # one sentence for `jobs why`: how it packs, or why it does not
    targets: str = "all"  # the trials' LoRA targets
    seed: int = 0  # the built-in model's seed (its weights are drawn from it)

    @property
    def packed(self) -> bool:
        return self.slots >= 2


def plan_packing(spec: JobSpec, built_in: bool, fits: Fits | None = None) -> PackPlan | None:
    """None when the job did not ask for packing. `built_in`: the base model is the built-in
    one (fully fine-tuned unless lora_rank is set; its weights are drawn from each trial's seed).
    `fits(slots, rank, batch_size, max_seq_length)`: whether such a pack fits in memory (None:
    any does); a pack that would not shrinks to the most slots that do."""
    if spec.packing is None:
        return None
    shared = {name: _values(spec, name) for name in SHARED_SHAPE}
    varied = [name for name, values in shared.items() if values is None or len(values) > 1]
    if varied:
        return _unpacked(f"the search space varies {', '.join(varied)}: the trials of a pack share "
                         "batch size, sequence length and LoRA targets")
    ranks = _values(spec, "lora_rank", default=0 if built_in else PRETRAINED_LORA_RANK)
    if ranks is None or not all(isinstance(rank, int) and not isinstance(rank, bool) for rank in ranks):
        return _unpacked("lora_rank is not a fixed value, a choice or a grid of integers: a pack is built "
                         "for the largest rank its trials can take")
    if min(ranks) < 1:
        return _unpacked("lora_rank can be 0 (full fine-tuning): only LoRA trials share a frozen base model")
    seeds = _values(spec, "seed", default=0) or [None, None]
    if built_in and len(seeds) > 1:
        return _unpacked("the built-in model's weights are drawn from each trial's seed, which the search "
                         "space varies: trials with other seeds have other base models")
    wanted, rank = spec.packing.max_trials, max(ranks)
    limit = (AUTO_SLOTS_GPU if spec.resources_per_trial.gpu > 0 else AUTO_SLOTS_CPU) if wanted == "auto" else wanted
    slots = min(limit, spec.max_concurrent_trials)
    if slots < 2:
        return _unpacked("max_concurrent_trials is 1: a pack runs two or more trials at once")
    shape = (int(shared["batch_size"][0]), int(shared["max_seq_length"][0]))
    fitting = next((k for k in range(slots, 1, -1) if fits is None or fits(k, rank, *shape)), 0)
    if fitting < 2:
        return _unpacked(f"a pack of two trials at LoRA rank {rank}, batch_size {shape[0]} and max_seq_length "
                         f"{shape[1]} would not fit in this machine's memory (training/memory.py)")
    shrunk = f"; a pack of {slots} would not fit in memory" if fitting < slots else ""
    return PackPlan(fitting, rank, targets=str(shared["lora_targets"][0]), seed=int(seeds[0] or 0),
                    reason=f"trials run {fitting} to a pack sharing one base model (packing.max_trials {wanted}, "
                           f"max_concurrent_trials {spec.max_concurrent_trials}{shrunk}), LoRA rank up to {rank}")


def _unpacked(reason: str) -> PackPlan:
    return PackPlan(0, 0, f"not packed: {reason}")


def _values(spec: JobSpec, name: str, default: Any = None) -> list | None:
    """Every value the job's trials can give `name`; None when they are not a finite list."""
    if name in spec.fixed_params:
        return [spec.fixed_params[name]]
    param = spec.search_space.get(name)
    if param is None:
        return [getattr(Hyperparameters(), name) if default is None else default]
    if isinstance(param, (Choice, Grid)):
        return list(param.values)
    if isinstance(param, RandInt):
        return list(range(int(param.min), int(param.max))) if param.max - param.min <= 1024 else None
    return None
