"""Supervised fine-tuning of a model on a dataset's traces with Tunix's PeftTrainer.

Each example is [BOS] + the rendered prompt (chat template, or prompt + separator) + answer + EOS
(BOS when the tokenizer has one); the loss covers only the answer and
EOS, so the model learns to answer, not to reproduce prompts. Every optimizer number (peak
learning rate, schedule, weight decay, clipping norm) lives in the optimizer state, so trials
that differ only in those values run the same compiled program, read from the persistent
compilation cache (see jax_setup and optimizer.py).

With a checkpoint folder, the trainer saves model and optimizer state every eval_every steps
and, when the folder already holds a checkpoint, continues from it: the batches before it are
skipped (their order depends only on the seed), and the optimizer's numbers are set from the
hyperparameters given now, which a Population Based Training exploit may have changed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from tunix.sft import hooks, peft_trainer
from tunix.sft.utils import build_positions_from_mask, make_causal_attn_mask

from training.hyperparams import Hyperparameters
from training.optimizer import Trainer, make_optimizer, set_optimizer_numbers
from training.model import apply_lora, merge_lora
from training.tokenizer import CharTokenizer, HfTokenizer
from training.traces import Dataset, Trace
from training.warm import WarmWorker

# Rows per teacher-forced eval batch: the whole eval split of small datasets in one program.
_MAX_EVAL_BATCH = 1024


@dataclass(frozen=True)
class TrainResult:
    steps: int
    resumed_at: int  # the checkpoint's step training continued from; 0 for a fresh start
    train_loss: float | None  # mean training loss over the last eval_every steps run here
    eval_loss: float | None  # teacher-forced loss on the eval split after the last step
    first_step_s: float  # the first train step: trace, lower, compile (or cache load), dispatch
    train_s: float  # the trainer's whole loop, compile included
    steps_per_s: float  # after the first step, evaluations left out


Tokenizer = CharTokenizer | HfTokenizer


def encode_examples(traces: Sequence[Trace], tokenizer: Tokenizer, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, loss_mask), both [len(traces), max_len]; too-long examples lose their tail.

    Raises ValueError when no example keeps an answer token: training would learn nothing.
    """
    tokens = np.full((len(traces), max_len), tokenizer.pad_id, np.int32)
    loss_mask = np.zeros((len(traces), max_len), bool)
    needed = 0
    for row, trace in enumerate(traces):
        context = [*([tokenizer.bos_id] if tokenizer.bos_id is not None else []), *tokenizer.encode(tokenizer.render(trace))]
        ids = context + tokenizer.encode(trace.final_answer) + [tokenizer.eos_id]
        needed = max(needed, len(ids))
        ids = ids[:max_len]
        tokens[row, : len(ids)] = ids
        loss_mask[row, len(context): len(ids)] = True
    if len(traces) and not loss_mask.any():
        raise ValueError(
            f"max_seq_length={max_len} truncates every answer away; the longest example needs {needed} tokens"
        )
    return tokens, loss_mask


def train_steps(hp: Hyperparameters, n_train: int) -> int:
    return hp.max_steps or max(1, hp.num_epochs * n_train // hp.batch_size)


def _checkpointing(checkpoint_dir: Path | None, every: int) -> dict:
    if checkpoint_dir is None:
        return {}
    return {
        "checkpoint_root_directory": str(Path(checkpoint_dir).resolve()),
        # Synchronous: the step's folder is complete when its report goes out, so the caller
        # can copy it (Ray Tune's checkpoints) at that moment.
        # At every report only: Orbax's default policy also saves a run's first step, a
        # checkpoint no report hands on (2.6 s of each SmolLM2 trial).
        "checkpointing_options": ocp.CheckpointManagerOptions(
            should_save_fn=partial(_at_report, every=every), max_to_keep=1, enable_async_checkpointing=False
        ),
    }


def _at_report(step: int, _last_saved: int | None, *, every: int) -> bool:
    return step % every == 0


def model_inputs(pad_id: int) -> Callable[[peft_trainer.TrainingInput], dict]:
    """TrainingInput (tokens, loss mask) -> the keyword arguments of Tunix's default loss.

    Examples are left-aligned and end with their answer's EOS, the last position with loss: every
    position up to it is real, every one after it padding. The mask comes from that, not from
    `tokens != pad`, because some tokenizers (Qwen) pad with their EOS id. A row without loss
    (its answer truncated away) falls back to the pad id."""

    def inputs(x: peft_trainer.TrainingInput) -> dict:
        at = jnp.arange(x.input_tokens.shape[1])
        last = jnp.max(jnp.where(x.input_mask, at, -1), axis=1, keepdims=True)
        real = jnp.where(last >= 0, at <= last, x.input_tokens != pad_id)
        return {
            "input_tokens": x.input_tokens, "input_mask": x.input_mask,
            "positions": build_positions_from_mask(real), "attention_mask": make_causal_attn_mask(real),
        }

    return inputs


def train_batches(tokens, mask, batch_size: int, steps: int, seed: int) -> Iterator[peft_trainer.TrainingInput]:
    """`steps` batches from back-to-back shuffles of the split; finite, so training ends with it."""
    rng = np.random.default_rng(seed)
    order = np.empty(0, np.int64)
    for _ in range(steps):
        while len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(len(tokens))])
        rows, order = order[:batch_size], order[batch_size:]
        yield peft_trainer.TrainingInput(input_tokens=tokens[rows], input_mask=mask[rows])


def eval_batches(tokens, mask) -> list[peft_trainer.TrainingInput]:
    """Equal-sized batches (one compiled program); filler rows are all padding and carry no loss."""
    n_batches = -(-len(tokens) // _MAX_EVAL_BATCH)
    size = -(-len(tokens) // n_batches)
    filler = n_batches * size - len(tokens)
    tokens = np.concatenate([tokens, np.zeros((filler, tokens.shape[1]), tokens.dtype)])
    mask = np.concatenate([mask, np.zeros((filler, mask.shape[1]), bool)])
    return [
        peft_trainer.TrainingInput(input_tokens=tokens[i:i + size], input_mask=mask[i:i + size])
        for i in range(0, len(tokens), size)
    ]


def teacher_forced_loss(model: nnx.Module, tokenizer: Tokenizer, traces: Sequence[Trace], max_len: int) -> float | None:
    """The eval loss train() reports (Tunix's default loss, mean over the eval batches) of `model`
    as it is, without a trainer or optimizer state: the baseline of an untrained model."""
    if not traces:
        return None
    inputs = model_inputs(tokenizer.pad_id)
    loss = nnx.jit(lambda m, batch: peft_trainer._default_loss_fn(m, **batch))
    return float(np.mean([loss(model, inputs(b)) for b in eval_batches(*encode_examples(traces, tokenizer, max_len))]))


# Metrics of the model as it is (e.g. its score on the eval split), for intermediate reports.
Scorer = Callable[[nnx.Module], dict[str, float]]


class _Reporter(hooks.TrainingHooks):
    """Collects per-step losses and step timings, and reports every eval_every steps.

    The trainer evaluates right after update k but hands over step k's loss only after
    dispatching step k+1, so step k is reported when its loss arrives, its eval loss (and the
    scorer's metrics, when there is a scorer) already known. The last step is reported by
    train() itself; the eval Tunix runs before the first step (or at the step it resumed
    from) is not reported.
    """

    def __init__(self, total_steps: int, eval_every: int, n_eval_batches: int, emit: Callable[[dict], None],
                 scorer: Scorer | None, resumed_at: int):
        self.total_steps, self.eval_every, self.n_eval_batches = total_steps, eval_every, n_eval_batches
        self.emit, self.scorer, self.resumed_at = emit, scorer, resumed_at
        self.losses: list[float] = []
        self.evals: dict[int, float] = {}
        self.scores: dict[int, dict[str, float]] = {}
        self.step_starts: list[float] = []
        self.eval_s = 0.0  # evaluations run after the first step, left out of the step rate
        self._eval_started: float | None = None

    def window_loss(self) -> float | None:
        """None when no step ran: the run resumed from a checkpoint at its last step."""
        return float(np.mean(self.losses[-self.eval_every:])) if self.losses else None

    def on_train_start(self, train_ctx):
        pass

    def on_train_end(self, train_ctx):
        pass

    def on_train_step_start(self, train_ctx):
        if len(self.step_starts) < 2:
            self.step_starts.append(time.perf_counter())

    def on_train_step_end(self, train_ctx, train_step, train_loss):
        self.losses.append(float(train_loss))
        if train_step % self.eval_every == 0 and train_step < self.total_steps:
            loss = self.evals.get(train_step)  # None without an eval split
            scores = self.scores.pop(train_step, {})
            self.emit({"step": train_step, "train_loss": self.window_loss(), "eval_loss": loss, **scores})

    def on_eval_step_start(self, train_ctx):
        self._eval_started = time.perf_counter() if len(self.step_starts) >= 2 else None

    def on_eval_step_end(self, train_ctx, eval_loss):
        # eval_loss is the sum of the per-batch mean losses.
        step = train_ctx.train_steps
        self.evals[step] = float(eval_loss) / self.n_eval_batches
        if self.scorer is not None and self.resumed_at < step < self.total_steps:
            self.scores[step] = self.scorer(train_ctx.model)
        if self._eval_started is not None:
            self.eval_s += time.perf_counter() - self._eval_started


def train(
    model: nnx.Module,
    tokenizer: Tokenizer,
    dataset: Dataset,
    hp: Hyperparameters,
    report: Callable[[dict], None],
    workdir: Path,
    checkpoint_dir: Path | None = None,
    scorer: Scorer | None = None,
    lora_modules: str = ".*",
    before_merge: Callable[[nnx.Module], None] | None = None,
    worker: WarmWorker | None = None,
) -> TrainResult:
    """Train `model` in place (LoRA adapters, when hp.lora_rank > 0, are merged into it at the
    end); report {step, train_loss, eval_loss} (plus the scorer's metrics, before the last
    step) every hp.eval_every steps and after the last step. Deterministic for a given
    hp.seed. `before_merge` gets the LoRA model before its adapters are merged. The loss of every
    step run here goes to workdir/step_losses.json (after a resume:
    the steps after resumed_at). With `checkpoint_dir`, saves a checkpoint every
    hp.eval_every steps and resumes from the one already there. With a warm `worker`
    (training/warm.py), the LoRA model, optimizer and compiled steps come from it."""
    if not dataset.train:
        raise ValueError(f"dataset {dataset.key!r} has no training traces")
    steps = train_steps(hp, len(dataset.train))
    train_tokens, train_mask = encode_examples(dataset.train, tokenizer, hp.max_seq_length)
    eval_ds = eval_batches(*encode_examples(dataset.eval, tokenizer, hp.max_seq_length)) if dataset.eval else None

    def adapt(seed: int) -> nnx.Module:
        return apply_lora(model, hp.lora_rank, hp.lora_alpha, seed, lora_modules)

    if worker is None:
        trained = adapt(hp.seed) if hp.lora_rank > 0 else model
        tx, compiled = make_optimizer(hp, steps), None
    else:  # the worker's LoRA model, optimizer and compiled steps of this program
        program = worker.program(model, hp.lora_rank, hp.lora_alpha, lora_modules)
        trained = worker.adapted(program, hp.seed, adapt) if hp.lora_rank > 0 else model
        tx, compiled = worker.optimizer(program, lambda: make_optimizer(hp, steps)), program.steps

    # No max_steps: the finite batch iterator ends training, and Tunix then shows no progress
    # bar, whose per-step cost grows with the step count.
    trainer = Trainer(
        trained, tx,
        peft_trainer.TrainingConfig(eval_every_n_steps=hp.eval_every, **_checkpointing(checkpoint_dir, hp.eval_every)),
        compiled=compiled,
    ).with_gen_model_input_fn(model_inputs(tokenizer.pad_id))
    resumed_at = trainer.train_steps  # restored from checkpoint_dir, else 0
    # Always: a restored state brought the saved run's numbers, a warm worker's optimizer its
    # first trial's; and fresh or warm, the state then holds the same arrays.
    set_optimizer_numbers(trainer.optimizer, hp, steps)
    reporter = _Reporter(steps, hp.eval_every, len(eval_ds or ()), report, scorer, resumed_at)
    trainer.with_training_hooks(reporter)

    started = time.perf_counter()
    trainer.train(train_batches(train_tokens, train_mask, hp.batch_size, steps, hp.seed), eval_ds)
    train_s = time.perf_counter() - started

    eval_loss = reporter.evals.get(steps)
    if eval_ds and eval_loss is None:
        _, eval_step = trainer.jit_train_and_eval_step()
        eval_loss = float(np.mean([eval_step(batch)[0] for batch in eval_ds]))
    if trained is not model:
        if before_merge is not None:  # the LoRA model itself, e.g. to export the adapter
            before_merge(trained)
        merge_lora(trained, model, hp.lora_rank, hp.lora_alpha)
    if resumed_at < steps:  # resumed at the last step: that step's report went out before
        report({"step": steps, "train_loss": reporter.window_loss(), "eval_loss": eval_loss})
    Path(workdir).mkdir(parents=True, exist_ok=True)
    (Path(workdir) / "step_losses.json").write_text(json.dumps(reporter.losses))

    # When training ran a single step (or none), its end stands in for the missing starts.
    ran = steps - resumed_at
    first, second = (reporter.step_starts + [started + train_s] * 2)[:2]
    return TrainResult(
        steps=steps,
        resumed_at=resumed_at,
        train_loss=reporter.window_loss(),
        eval_loss=eval_loss,
        first_step_s=second - first,
        train_s=train_s,
        steps_per_s=((ran - 1) / (started + train_s - second - reporter.eval_s) if ran > 1
                     else ran / max(second - first, 1e-9)),
    )
