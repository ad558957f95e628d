"""Packed LoRA trials: K trials that share one frozen base model, trained as the slots of one
compiled JAX program.

Every slot holds its own adapters, optimizer state (with its own learning rate, schedule, weight
decay and clipping norm: inject_hyperparams state, training/optimizer.py), data order and step
count; the frozen base weights are one copy, broadcast to every slot. The step is `jax.vmap` of
one trial's step over the slot axis, so nothing reduces over it: a slot's gradient clipping sees
its own gradients, a slot that diverges (NaN, inf) changes no other slot's numbers. Empty slots
are masked (their state is kept as it is), so one compiled program serves every fill level.

A pack runs one program: trials with the same base model, LoRA targets, batch size and sequence
length (`pack_key`). Ranks and alphas may differ: the pack's adapters have the largest rank, a
smaller one is padded with zeros (exact: a zero column of A and row of B get zero gradients, so
Adam leaves them zero), and each slot's alpha/rank is a per-slot scale applied to its B inside
the step (the pack's model itself is built with scale 1). A slot's results equal the same trial
run alone by training/train.train up to float rounding (tests/e2e/test_packed_trials.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.tree_util import keystr
from tunix.sft import peft_trainer

from training.hyperparams import Hyperparameters
from training.optimizer import make_optimizer, optimizer_numbers
from training.train import eval_batches, model_inputs, train_batches, encode_examples, train_steps
from training.traces import Dataset


def pack_key(hp: Hyperparameters) -> tuple:
    """What trials must share to be slots of one pack (besides the base model and dataset)."""
    return (hp.lora_targets, hp.batch_size, hp.max_seq_length)


def pack_model(base_model: nnx.Module, rank: int, lora_modules: str) -> nnx.Module:
    """The LoRA model a pack of trials up to `rank` runs: alpha = rank, so qwix's own scale is 1
    and every slot's alpha/rank is applied in the step."""
    from training.model import apply_lora

    return apply_lora(base_model, rank, float(rank), 0, lora_modules)


class Pack:
    """K slots of one LoRA program: fill a slot with a trial's initial adapters and numbers, step
    every filled slot at once, read a slot's adapters back (or copy one slot into another)."""

    def __init__(self, lora_model: nnx.Module, slots: int, pad_id: int):
        """`lora_model`: pack_model's, at the largest rank the pack's trials use."""
        self.graphdef, adapters, self.frozen = nnx.split(lora_model, nnx.LoRAParam, ...)
        self.slots = slots
        self.scales = np.ones(slots, np.float32)  # each slot's alpha / rank
        self._shapes: list = [None] * slots  # each slot's adapter shapes at its own rank
        self._is_b = [any(str(getattr(key, "key", getattr(key, "name", ""))).endswith("_lora_b") for key in path)
                      for path, _ in jax.tree_util.tree_leaves_with_path(adapters)]
        if not any(self._is_b) or all(self._is_b):
            raise ValueError("the model has no LoRA adapters to pack (no *_lora_a / *_lora_b parameters)")
        # The transformation only: every number it uses is per-slot state (`fill`).
        self.tx = make_optimizer(Hyperparameters(), total_steps=1)
        self.adapters = jax.tree.map(lambda a: jnp.zeros((slots, *a.shape), a.dtype), adapters)
        self.opt_state = jax.vmap(self.tx.init)(self.adapters)
        self.filled = np.zeros(slots, bool)
        self._inputs = model_inputs(pad_id)
        self._train = jax.jit(self._train_step, donate_argnums=(0, 1))
        self._eval = jax.jit(self._eval_loss)

    def _scaled(self, adapters, scale):
        """The slot's adapters as its forward uses them: B times the slot's alpha/rank."""
        leaves, tree = jax.tree_util.tree_flatten(adapters)
        return jax.tree_util.tree_unflatten(
            tree, [leaf * scale.astype(leaf.dtype) if is_b else leaf for leaf, is_b in zip(leaves, self._is_b, strict=True)])

    def _loss(self, adapters, scale, frozen, tokens, mask):
        model = nnx.merge(self.graphdef, self._scaled(adapters, scale), frozen)
        return peft_trainer._default_loss_fn(model, **self._inputs(peft_trainer.TrainingInput(tokens, mask)))

    def _train_step(self, adapters, opt_state, frozen, filled, scales, tokens, mask):
        def one(adapters, opt_state, filled, scale, tokens, mask):
            loss, grads = jax.value_and_grad(self._loss)(adapters, scale, frozen, tokens, mask)
            updates, new_opt_state = self.tx.update(grads, opt_state, adapters)
            new_adapters = optax.apply_updates(adapters, updates)
            keep = lambda new, old: jnp.where(filled, new, old)  # noqa: E731  (an empty slot stays as it is)
            return jax.tree.map(keep, new_adapters, adapters), jax.tree.map(keep, new_opt_state, opt_state), loss

        return jax.vmap(one)(adapters, opt_state, filled, scales, tokens, mask)

    def _eval_loss(self, adapters, scales, frozen, tokens, mask):
        return jax.vmap(lambda a, scale: self._loss(a, scale, frozen, tokens, mask))(adapters, scales)

    def _fits(self, shapes: list) -> bool:
        """Whether adapters of these shapes (one per leaf) fit in this pack's, padded."""
        full = [a.shape[1:] for a in jax.tree.leaves(self.adapters)]
        return len(shapes) == len(full) and all(
            len(own) == len(pack) and all(o <= f for o, f in zip(own, pack)) for own, pack in zip(shapes, full))

    def fill(self, slot: int, adapters: nnx.State, hp: Hyperparameters, total_steps: int) -> None:
        """Start a trial in `slot`: its initial adapters (at its own rank), a fresh optimizer state
        with its numbers, its alpha/rank."""
        shapes = [a.shape for a in jax.tree.leaves(adapters)]
        if not self._fits(shapes):
            raise ValueError(f"lora_rank {hp.lora_rank} does not fit this pack, built for smaller adapters")
        self._shapes[slot] = shapes
        adapters = jax.tree.map(_padded, adapters, _slot(self.adapters, 0))
        self.adapters = _set_slot(self.adapters, slot, adapters)
        self.opt_state = _set_slot(self.opt_state, slot, self.tx.init(adapters))
        self.set_numbers(slot, hp, total_steps)
        self.scales[slot] = hp.lora_alpha / hp.lora_rank
        self.filled[slot] = True

    def set_numbers(self, slot: int, hp: Hyperparameters, total_steps: int) -> None:
        """The slot's optimizer numbers (learning rate schedule, weight decay, clipping norm) from
        `hp`, its moments and step count kept: a restored trial continues with the numbers it
        runs with now, which a PBT exploit may have changed."""
        state = _slot(self.opt_state, slot)
        numbers = optimizer_numbers(hp, total_steps)
        state = state._replace(
            hyperparams={**state.hyperparams, **{k: numbers[k] for k in ("weight_decay", "max_grad_norm")}},
            hyperparams_states={"learning_rate": state.hyperparams_states["learning_rate"]._replace(
                peak=numbers["peak"], warmup=numbers["warmup"], total=numbers["total"])},
        )
        self.opt_state = _set_slot(self.opt_state, slot, state)

    def empty(self, slot: int) -> None:
        self.filled[slot] = False

    def copy(self, source: int, target: int) -> None:
        """A PBT exploit inside the pack: `target` continues from `source`'s adapters and optimizer."""
        self.adapters = _set_slot(self.adapters, target, _slot(self.adapters, source))
        self.opt_state = _set_slot(self.opt_state, target, _slot(self.opt_state, source))
        self.scales[target], self._shapes[target] = self.scales[source], self._shapes[source]

    def step(self, tokens: np.ndarray, mask: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """One train step of every filled slot (of those `active` marks, when given) on its own
        batch ([slots, batch, length]); the losses. The others keep their state as it is."""
        stepped = self.filled if active is None else self.filled & active
        self.adapters, self.opt_state, losses = self._train(
            self.adapters, self.opt_state, self.frozen, jnp.asarray(stepped), jnp.asarray(self.scales), tokens, mask)
        return np.asarray(losses)

    def eval_loss(self, batches: Sequence[peft_trainer.TrainingInput]) -> np.ndarray:
        """Every slot's teacher-forced loss on the same eval batches (the mean over the batches)."""
        return np.mean([np.asarray(self._eval(self.adapters, jnp.asarray(self.scales), self.frozen, b.input_tokens,
                                              b.input_mask))
                        for b in batches], axis=0)

    def slot_adapters(self, slot: int) -> nnx.State:
        """The slot's adapters at its trial's own rank: what the trial alone would hold."""
        leaves, tree = jax.tree_util.tree_flatten(_slot(self.adapters, slot))
        return jax.tree_util.tree_unflatten(
            tree, [leaf[tuple(slice(0, n) for n in shape)] for leaf, shape in zip(leaves, self._shapes[slot], strict=True)])

    def save_slot(self, slot: int, folder: Path) -> None:
        """The slot's trial as it stands (adapters, optimizer state, its adapters' shapes and
        alpha/rank): a pack of any rank that fits continues it from here (`restore`), e.g. after
        the tuner was killed, or in another trial's slot after a PBT exploit."""
        folder.mkdir(parents=True, exist_ok=True)
        trees = {"adapters": _slot(self.adapters, slot), "opt_state": _slot(self.opt_state, slot)}
        np.savez(folder / "slot.npz", **{f"{name}{keystr(path)}": np.asarray(leaf) for name, tree in trees.items()
                                          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)})
        (folder / "slot.json").write_text(json.dumps({"scale": float(self.scales[slot]),
                                                      "shapes": [list(shape) for shape in self._shapes[slot]]}))

    def restore(self, slot: int, folder: Path) -> None:
        """Continue in `slot` the trial `save_slot` wrote to `folder`. The padding beyond a trial's
        rank holds zeros (adapters and moments), so cutting it off or adding more is exact."""
        meta = json.loads((folder / "slot.json").read_text())
        if not self._fits(meta["shapes"]):
            raise ValueError(f"the trial saved in {folder} has larger adapters than this pack holds")
        with np.load(folder / "slot.npz") as saved:
            def fitted(name: str, tree):
                return jax.tree_util.tree_map_with_path(
                    lambda path, leaf: _fitted(saved[f"{name}{keystr(path)}"], leaf.shape), _slot(tree, 0))

            self.adapters = _set_slot(self.adapters, slot, fitted("adapters", self.adapters))
            self.opt_state = _set_slot(self.opt_state, slot, fitted("opt_state", self.opt_state))
        self.scales[slot], self._shapes[slot] = meta["scale"], [tuple(shape) for shape in meta["shapes"]]
        self.filled[slot] = True

    def slot_model(self, slot: int) -> nnx.Module:
        """The LoRA model of one slot, its alpha/rank folded into B: merge it into the base with
        training.model.merge_lora(model, base, rank=the pack's, alpha=the pack's rank)."""
        return nnx.merge(self.graphdef, self._scaled(_slot(self.adapters, slot), jnp.float32(self.scales[slot])),
                         self.frozen)


def _slot(tree, slot: int):
    return jax.tree.map(lambda a: a[slot], tree)


def _padded(adapter, like):
    """A smaller rank's adapter in the pack's shape: zeros where the larger rank has more."""
    return jnp.pad(adapter, [(0, full - own) for own, full in zip(adapter.shape, like.shape, strict=True)])


def _fitted(array: np.ndarray, shape: tuple) -> jax.Array:
    """`array` cut or zero-padded to `shape` (its dimensions beyond a trial's rank hold zeros)."""
    if not shape:
        return jnp.asarray(array)
    cut = array[tuple(slice(0, n) for n in shape)]
    return jnp.pad(cut, [(0, full - own) for own, full in zip(cut.shape, shape, strict=True)])


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
    if any(hp.lora_rank < 1 for hp, _ in trials):
        raise ValueError("a pack trains LoRA trials (lora_rank >= 1)")
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
    orders: list[Iterator] = [train_batches(tokens, mask, hp.batch_size, total, hp.seed) for hp, _ in trials]
    # An empty slot gets the first trial's batch: one input shape for every fill level.
    losses = []
    for _ in range(total):
        batches = [next(order) for order in orders]
        batches += [batches[0]] * (pack.slots - len(batches))
        losses.append(pack.step(np.stack([b.input_tokens for b in batches]), np.stack([b.input_mask for b in batches])))
    eval_losses = pack.eval_loss(eval_batches(*encode_examples(dataset.eval, tokenizer, hp0.max_seq_length))) \
        if dataset.eval else [None] * pack.slots
    return [SlotResult([float(step[slot]) for step in losses],
                       None if eval_losses[slot] is None else float(eval_losses[slot]), pack.slot_adapters(slot))
            for slot in range(len(trials))]
