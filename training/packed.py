"""Packed LoRA trials: K trials that share one frozen base model, trained as the slots of one
compiled JAX program.

Every slot holds its own adapters, optimizer state (with its own learning rate, schedule, weight
decay and clipping norm: inject_hyperparams state, training/optimizer.py), data order and step
count; the frozen base weights are one copy, broadcast to every slot. The step is `jax.vmap` of
one trial's step over the slot axis, so nothing reduces over it: a slot's gradient clipping sees
its own gradients, a slot that diverges (NaN, inf) changes no other slot's numbers. Empty slots
are masked (their state is kept as it is), so one compiled program serves every fill level.

A pack runs one program: trials with the same base model, LoRA rank, alpha and targets, batch
size and sequence length (`pack_key`). A slot's results equal the same trial run alone by
training/train.train up to float rounding (tests/e2e/test_packed_trials.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tunix.sft import peft_trainer

from training.hyperparams import Hyperparameters
from training.optimizer import make_optimizer, optimizer_numbers
from training.train import _eval_batches, _model_inputs, _train_batches, encode_examples, train_steps
from training.traces import Dataset


def pack_key(hp: Hyperparameters) -> tuple:
    """What trials must share to be slots of one pack (besides the base model and dataset)."""
    return (hp.lora_rank, hp.lora_alpha, hp.lora_targets, hp.batch_size, hp.max_seq_length)


class Pack:
    """K slots of one LoRA program: fill a slot with a trial's initial adapters and numbers, step
    every filled slot at once, read a slot's adapters back (or copy one slot into another)."""

    def __init__(self, lora_model: nnx.Module, slots: int, pad_id: int):
        self.graphdef, adapters, self.frozen = nnx.split(lora_model, nnx.LoRAParam, ...)
        self.slots = slots
        # The transformation only: every number it uses is per-slot state (`fill`).
        self.tx = make_optimizer(Hyperparameters(), total_steps=1)
        self.adapters = jax.tree.map(lambda a: jnp.zeros((slots, *a.shape), a.dtype), adapters)
        self.opt_state = jax.vmap(self.tx.init)(self.adapters)
        self.filled = np.zeros(slots, bool)
        self._inputs = _model_inputs(pad_id)
        self._train = jax.jit(self._train_step, donate_argnums=(0, 1))
        self._eval = jax.jit(self._eval_loss)

    def _loss(self, adapters, frozen, tokens, mask):
        model = nnx.merge(self.graphdef, adapters, frozen)
        return peft_trainer._default_loss_fn(model, **self._inputs(peft_trainer.TrainingInput(tokens, mask)))

    def _train_step(self, adapters, opt_state, frozen, filled, tokens, mask):
        def one(adapters, opt_state, filled, tokens, mask):
            loss, grads = jax.value_and_grad(self._loss)(adapters, frozen, tokens, mask)
            updates, new_opt_state = self.tx.update(grads, opt_state, adapters)
            new_adapters = optax.apply_updates(adapters, updates)
            keep = lambda new, old: jnp.where(filled, new, old)  # noqa: E731  (an empty slot stays as it is)
            return jax.tree.map(keep, new_adapters, adapters), jax.tree.map(keep, new_opt_state, opt_state), loss

        return jax.vmap(one)(adapters, opt_state, filled, tokens, mask)

    def _eval_loss(self, adapters, frozen, tokens, mask):
        return jax.vmap(lambda a: self._loss(a, frozen, tokens, mask))(adapters)

    def fill(self, slot: int, adapters: nnx.State, hp: Hyperparameters, total_steps: int) -> None:
        """Start a trial in `slot`: its initial adapters, a fresh optimizer state with its numbers."""
        state = self.tx.init(adapters)
        numbers = optimizer_numbers(hp, total_steps)
        state = state._replace(
            hyperparams={**state.hyperparams, **{k: numbers[k] for k in ("weight_decay", "max_grad_norm")}},
            hyperparams_states={"learning_rate": state.hyperparams_states["learning_rate"]._replace(
                peak=numbers["peak"], warmup=numbers["warmup"], total=numbers["total"])},
        )
        self.adapters = _set_slot(self.adapters, slot, adapters)
        self.opt_state = _set_slot(self.opt_state, slot, state)
        self.filled[slot] = True

    def empty(self, slot: int) -> None:
        self.filled[slot] = False

    def copy(self, source: int, target: int) -> None:
        """A PBT exploit inside the pack: `target` continues from `source`'s adapters and optimizer."""
        self.adapters = _set_slot(self.adapters, target, _slot(self.adapters, source))
        self.opt_state = _set_slot(self.opt_state, target, _slot(self.opt_state, source))

    def step(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """One train step of every filled slot on its own batch ([slots, batch, length]); the losses."""
        self.adapters, self.opt_state, losses = self._train(
            self.adapters, self.opt_state, self.frozen, jnp.asarray(self.filled), tokens, mask)
        return np.asarray(losses)

    def eval_loss(self, batches: Sequence[peft_trainer.TrainingInput]) -> np.ndarray:
        """Every slot's teacher-forced loss on the same eval batches (the mean over the batches)."""
        return np.mean([np.asarray(self._eval(self.adapters, self.frozen, b.input_tokens, b.input_mask))
                        for b in batches], axis=0)

    def slot_adapters(self, slot: int) -> nnx.State:
        return _slot(self.adapters, slot)

    def slot_model(self, slot: int) -> nnx.Module:
        """The LoRA model of one slot (its adapters on the shared frozen weights)."""
        return nnx.merge(self.graphdef, self.slot_adapters(slot), self.frozen)


def _slot(tree, slot: int):
    return jax.tree.map(lambda a: a[slot], tree)


def _set_slot(tree, slot: int, value):
    return jax.tree.map(lambda a, v: a.at[slot].set(v), tree, value)


@dataclass(frozen=True)
class SlotResult:
    losses: list[float]  # every step's training loss
    eval_loss: float | None
    adapters: nnx.State


def train_pack(pack: Pack, tokenizer, dataset: Dataset, trials: Sequence[tuple[Hyperparameters, nnx.State]]
               ) -> list[SlotResult]:
    """Train up to `pack.slots` trials of one program together, each from its initial adapters, for
    their step count (the same for all: max_steps is part of a job's fixed shape)."""
    if len(trials) > pack.slots or len({pack_key(hp) for hp, _ in trials}) != 1:
        raise ValueError("a pack trains up to its slot count of trials of one program")
    steps = {train_steps(hp, len(dataset.train)) for hp, _ in trials}
    if len(steps) != 1:
        raise ValueError(f"the trials of a pack run the same number of steps, not {sorted(steps)}")
    (total,) = steps
    hp0 = trials[0][0]
    tokens, mask = encode_examples(dataset.train, tokenizer, hp0.max_seq_length)
    for slot, (hp, adapters) in enumerate(trials):
        pack.fill(slot, adapters, hp, total)
    for slot in range(len(trials), pack.slots):
        pack.empty(slot)
    orders: list[Iterator] = [_train_batches(tokens, mask, hp.batch_size, total, hp.seed) for hp, _ in trials]
    # An empty slot gets the first trial's batch: one input shape for every fill level.
    losses = []
    for _ in range(total):
        batches = [next(order) for order in orders]
        batches += [batches[0]] * (pack.slots - len(batches))
        losses.append(pack.step(np.stack([b.input_tokens for b in batches]), np.stack([b.input_mask for b in batches])))
    eval_losses = pack.eval_loss(_eval_batches(*encode_examples(dataset.eval, tokenizer, hp0.max_seq_length))) \
        if dataset.eval else [None] * pack.slots
    return [SlotResult([float(step[slot]) for step in losses],
                       None if eval_losses[slot] is None else float(eval_losses[slot]), pack.slot_adapters(slot))
            for slot in range(len(trials))]
