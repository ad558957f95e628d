"""How a job's trials execute: the one place the tuner chooses.

- alone, each on a worker process Ray Tune reuses for the job's next trial (`train_trial`: the
  run pipeline with the process's warm worker, training/warm.py); a fresh process is a worker's
  first trial;
- or, for a job that packs (consumers/tuner/packing.py), as slots of the job's pack actor
  (`packed_trial` relays its slot's reports; consumers/tuner/pack_actor.py).

Either way Ray Tune sees one trial per trial, with its reports, checkpoints and final result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune

from consumers.tuner.experiment import intermediate_scores, trial_inputs
from consumers.tuner.pack_actor import PackSlots, pack_name, start_pack
from consumers.tuner.packing import plan_packing
from consumers.tuner.trainable import packed_trial, train_trial
from producers.job_run import JobRun
from training.catalog import resolve_in
from training.folders import Folders
from training.validate import pack_fits

# What a packed trial's trainable reserves: it waits on the pack actor, which holds the resources.
PACKED_TRIAL_CPU = 0.01


@dataclass
class TrialExecution:
    trainable: Any  # what Ray Tune runs for each trial, with the resources it reserves
    callbacks: list  # what Ray Tune tells of the trials' ends besides the event log's callback
    # The job's pack actor, when its trials run packed: held here for the experiment's life (Ray
    # ends an actor, named or not, once no handle to it is left).
    pack: Any = None

    def close(self) -> None:
        """The job's experiment ended (or was handed over): its pack goes."""
        if self.pack is not None:
            ray.kill(self.pack)


def trial_execution(run: JobRun, path: Path, folders: Folders, restoring: bool) -> TrialExecution:
    """The job's trainable; for a packed job its pack actor starts here. Whether the job packs,
    and why not, goes on its log once (not again when a next owner restores the experiment)."""
    spec, resources = run.spec, run.spec.resources_per_trial
    inputs = trial_inputs(spec, path, folders)
    source = None if spec.packing is None else resolve_in(spec.base_model_id, folders)
    plan = None if source is None else plan_packing(
        spec, built_in=source.kind == "built-in", fits=pack_fits(source))
    if plan is not None and not restoring:
        run.decide("packing", "tuner", "pack" if plan.packed else "unpacked", plan.reason,
                   max_trials=spec.packing.max_trials, slots=plan.slots, rank=plan.rank)
    if plan is None or not plan.packed:
        return TrialExecution(tune.with_resources(tune.with_parameters(train_trial, **inputs),
                                                  {"cpu": resources.cpu, "gpu": resources.gpu, **resources.custom}), [])
    run.pack_slots = plan.slots
    pack = start_pack(run.job_id, resources, plan.slots, dataset_key=spec.dataset_key, model_id=spec.base_model_id,
               folders=inputs["folders"], rank=plan.rank, targets=plan.targets, seed=plan.seed,
               intermediate_scores=intermediate_scores(spec), gpus=resources.gpu)
    # The pack holds the trial's resources; its trials' trainables only relay.
    trainable = tune.with_resources(tune.with_parameters(
        packed_trial, job_folder=inputs["job_folder"], pack=pack_name(run.job_id), slots=plan.slots),
        {"cpu": PACKED_TRIAL_CPU})
    return TrialExecution(trainable, [PackSlots(run.job_id)], pack=pack)
