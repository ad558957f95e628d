"""The packed trials of one job as runs: every slot of a Pack (training/packed.py) is one trial with
its own run folder, reports, checkpoints and final evaluation, as run_pipeline gives a trial
that runs alone (training/run.py).

A trial's run goes: `start` (fill a free slot with its initial adapters, or continue it from its
checkpoint), then `want` its next report and `step` until it comes: every eval_every steps
{step, train_loss, eval_loss} (plus the evaluation metrics when the scheduler ranks by them) and
the slot saved to checkpoint_dir/{step}; after the last step the held-out evaluation of the
trial's own model (its adapters at its own rank merged into the base, as a trial alone ends) and
its manifest, through the same `conclude_run`. Slots whose trials do not want a report wait,
unchanged, in the compiled step. Everything here runs on one thread; the caller
(consumers/tuner/pack_actor.py) serialises access.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from flax import nnx

from training.artifacts import RunFolder
from training.base_model import load_base, lora_modules
from training.catalog import resolve_in
from training.datasets import load_dataset
from training.evaluate import evaluate
from training.folders import Folders
from training.hf_export import export_lora
from training.hyperparams import Hyperparameters
from training.jax_setup import CompileTimer, configure_jax, use_accelerator
from training.model import apply_lora, merge_lora
from training.packed import Pack, pack_key, pack_model
from training.run import conclude_run, run_hyperparameters
from training.train import TrainResult, encode_examples, eval_batches, train_batches, train_steps
from training.warm import WarmWorker


class SlotDiverged(FloatingPointError):
    """A slot's training loss is NaN or infinite: its trial fails, its neighbours go on."""


@dataclass
class SlotRun:
    trial: str
    slot: int
    hp: Hyperparameters
    total: int
    run_id: str
    folder: RunFolder
    checkpoint_dir: Path
    batches: Iterator
    resumed_at: int
    step: int
    ordinal: int  # which of the pack's trials it is (1: the pack's first, compiled for it)
    wants: bool = False  # its trial waits for its next report
    losses: list[float] = field(default_factory=list)
    compile_s: float = 0.0
    step_starts: list[float] = field(default_factory=list)  # the first two steps' starts
    started: float = field(default_factory=time.perf_counter)


class PackedRuns:
    """One job's pack and the trials in its slots."""

    def __init__(self, dataset_key: str, model_id: str, *, folders: Folders, slots: int, rank: int, targets: str,
                 seed: int, intermediate_scores: bool, worker: WarmWorker, gpus: float = 0):
        """rank: the largest LoRA rank of the job's trials; targets: their LoRA targets; seed: the
        built-in model's seed (its weights are drawn from it; a checkpoint ignores it)."""
        use_accelerator(gpus)
        configure_jax(folders.jax_cache)
        self.source, self.seed, self.worker = resolve_in(model_id, folders), seed, worker
        self.base = worker.base(self.source, seed, lambda: load_base(self.source, seed))
        self.dataset = load_dataset(dataset_key, folders.datasets)
        self.modules = lora_modules(self.base.family, targets)
        self.pack = Pack(pack_model(self.base.model, rank, self.modules), slots, self.base.tokenizer.pad_id)
        self.scores = intermediate_scores and bool(self.dataset.eval)
        self.runs: dict[str, SlotRun] = {}
        self.started = 0  # trials started in this pack
        self._key: tuple | None = None  # the pack_key of its trials, and their encoded examples
        self._train = self._eval = None

    def has_room(self, trial: str) -> bool:
        return trial in self.runs or len(self.runs) < self.pack.slots

    def start(self, trial: str, values: dict, *, run_dir: Path, run_id: str, checkpoint_dir: Path,
              restored: bool) -> SlotRun:
        """Put `trial` in a slot (its own again when it had one: a retry or a PBT exploit):
        from its initial adapters, or, `restored`, from the newest slot checkpoint_dir holds."""
        hp = run_hyperparameters(self.source, values)
        self._encode(hp)
        self.started += 1
        if hp.lora_rank < 1:
            raise ValueError("a packed trial is a LoRA trial (lora_rank >= 1)")
        if trial in self.runs:
            slot = self.leave(trial)
        else:
            slot = min(set(range(self.pack.slots)) - {run.slot for run in self.runs.values()})
        total = train_steps(hp, len(self.dataset.train))
        saved = _newest_step(checkpoint_dir) if restored else None
        if saved is not None:
            self.pack.restore(slot, saved)
            self.pack.set_numbers(slot, hp, total)  # a PBT exploit's new numbers
        else:
            self.pack.fill(slot, nnx.state(self._trial_model(hp), nnx.LoRAParam), hp, total)
        resumed_at = int(saved.name) if saved is not None else 0
        batches = train_batches(*self._train, hp.batch_size, total, hp.seed)
        for _ in range(resumed_at):  # the order depends only on the seed: skip what ran before
            next(batches)
        run = SlotRun(trial, slot, hp, total, run_id, RunFolder(run_dir), checkpoint_dir, batches, resumed_at,
                      resumed_at, ordinal=self.started)
        self.runs[trial] = run
        return run

    def leave(self, trial: str) -> int | None:
        """Free the trial's slot (it ended, was stopped, or starts again); its slot number."""
        run = self.runs.pop(trial, None)
        if run is None:
            return None
        run.folder.close()
        self.pack.empty(run.slot)
        return run.slot

    def want(self, trial: str) -> None:
        self.runs[trial].wants = True

    def step(self) -> dict[str, list[dict] | Exception]:
        """One train step of every slot whose trial wants its next report; for each trial that got
        there, its records (the last step's, then the final result) or why it failed."""
        wanting = [run for run in self.runs.values() if run.wants and run.step < run.total]
        if not wanting:
            return {}
        batches: list = [None] * self.pack.slots
        for run in wanting:
            batches[run.slot] = next(run.batches)
            if len(run.step_starts) < 2:
                run.step_starts.append(time.perf_counter())
        filler = batches[wanting[0].slot]  # idle slots get a batch too: one input shape for all
        batches = [filler if batch is None else batch for batch in batches]
        active = np.zeros(self.pack.slots, bool)
        active[[run.slot for run in wanting]] = True
        with CompileTimer() as compiling:
            losses = self.pack.step(np.stack([b.input_tokens for b in batches]),
                                    np.stack([b.input_mask for b in batches]), active)
        out: dict[str, list[dict] | Exception] = {}
        reached = []
        for run in wanting:
            run.step += 1
            run.compile_s += compiling.seconds
            run.losses.append(float(losses[run.slot]))
            if not math.isfinite(run.losses[-1]):
                run.wants = False
                out[run.trial] = SlotDiverged(f"training diverged: loss {run.losses[-1]} at step {run.step}")
            elif run.step % run.hp.eval_every == 0 or run.step == run.total:
                reached.append(run)
        eval_losses = self.pack.eval_loss(self._eval) if reached and self._eval else None
        for run in reached:
            run.wants = False
            window = run.losses[-run.hp.eval_every:]
            record = {"step": run.step, "train_loss": float(np.mean(window)),
                      "eval_loss": None if eval_losses is None else float(eval_losses[run.slot])}
            self._checkpoint(run)
            if run.step < run.total:
                if self.scores:
                    record |= evaluate(self._merged(run), self.base.tokenizer, self.dataset.eval, self.worker)[0]
                    self.worker.pristine()  # the pack's frozen weights are the base's as loaded
                run.folder.log_metrics(record)
                out[run.trial] = [record]
            else:
                run.folder.log_metrics(record)
                out[run.trial] = [record, self._conclude(run, record)]
        return out

    def _encode(self, hp: Hyperparameters) -> None:
        key = pack_key(hp)
        if self._key is None:  # the first trial's: set once it encoded (a bad length raises for its trial)
            self._train = encode_examples(self.dataset.train, self.base.tokenizer, hp.max_seq_length)
            self._eval = (eval_batches(*encode_examples(self.dataset.eval, self.base.tokenizer, hp.max_seq_length))
                          if self.dataset.eval else None)
            self._key = key
        elif key != self._key:
            raise ValueError(f"this pack runs trials of LoRA targets, batch size and sequence length {self._key}, "
                             f"not {key}")

    def _trial_model(self, hp: Hyperparameters) -> nnx.Module:
        """The trial's own LoRA model (its rank and alpha) with its initial adapters: what it would
        train alone (the worker keeps it and its compiled programs)."""
        program = self.worker.program(self.base.model, hp.lora_rank, hp.lora_alpha, self.modules)
        return self.worker.adapted(
            program, hp.seed, lambda seed: apply_lora(self.base.model, hp.lora_rank, hp.lora_alpha, seed, self.modules))

    def _merged(self, run: SlotRun, exports: dict | None = None) -> nnx.Module:
        """The base model with the slot's adapters merged in, as a trial alone ends: its own-rank
        LoRA model holds the slot's adapters, merged into the base's weights as loaded."""
        lora = self._trial_model(run.hp)
        nnx.update(lora, self.pack.slot_adapters(run.slot))
        base = self.worker.pristine()
        if exports is not None and base.lineage["source"] != "built-in":
            exports.update(export_lora(lora, base.family, Path(base.lineage["folder"]), base.lineage,
                                       run.hp.lora_rank, run.hp.lora_alpha, run.hp.lora_targets, run.folder.path))
        merge_lora(lora, base.model, run.hp.lora_rank, run.hp.lora_alpha)
        return base.model

    def _checkpoint(self, run: SlotRun) -> None:
        """The slot at this step in checkpoint_dir/{step}, the one before removed (the trial's
        caller copies it into Ray's checkpoint at once)."""
        for old in run.checkpoint_dir.glob("*"):
            if old.name.isdigit():
                shutil.rmtree(old, ignore_errors=True)
        self.pack.save_slot(run.slot, run.checkpoint_dir / str(run.step))

    def _conclude(self, run: SlotRun, last: dict) -> dict:
        """The trial's end, as run_pipeline's: held-out evaluation, checkpoint, manifest."""
        exports: dict = {}
        self._merged(run, exports)
        ended = time.perf_counter()
        first, second = (run.step_starts + [ended] * 2)[:2]
        ran = run.total - run.resumed_at
        trained = TrainResult(steps=run.total, resumed_at=run.resumed_at, train_loss=last["train_loss"],
                              eval_loss=last["eval_loss"], first_step_s=second - first, train_s=ended - run.started,
                              steps_per_s=ran / max(ended - first, 1e-9))
        (run.folder.path / "step_losses.json").write_text(json.dumps(run.losses))
        result = conclude_run(run.folder, run.run_id, self.base, self.dataset, run.hp, trained,
                              compile_s=run.compile_s, exports=exports, started=run.started, worker=self.worker,
                              extra={"pack": {"slots": self.pack.slots, "slot": run.slot},
                                     # which of the pack's trials it was: after the first, it ran warm
                                     "worker_trial": run.ordinal})
        self.worker.pristine()
        return {"final": True, "run_dir": str(result.run_dir)}


def _newest_step(checkpoint_dir: Path) -> Path | None:
    steps = [path for path in checkpoint_dir.glob("*") if path.name.isdigit() and (path / "slot.json").exists()]
    return max(steps, key=lambda path: int(path.name), default=None)
