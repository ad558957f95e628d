"""The optimizer of a run: AdamW after gradient clipping, its learning rate a linear warmup then
cosine decay, every number of it (peak rate, schedule, weight decay, clipping norm) optimizer
state rather than a constant traced into the program, so trials that differ only in those
numbers share one compiled program, and a run continuing from another's checkpoint (a PBT
exploit) can take new values of them."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.interpreters import pxla
from tunix.sft import peft_trainer

from training.hyperparams import Hyperparameters


class _WarmupCosineState(NamedTuple):
    count: jax.Array
    peak: jax.Array
    warmup: jax.Array
    total: jax.Array


@dataclass(frozen=True)
class WarmupCosine:
    """optax StatefulSchedule: linear warmup to `peak` over `warmup_steps`, then cosine decay
    reaching 0 at `total_steps`. Its numbers are state, not constants traced into the program."""

    peak: float
    warmup_steps: int
    total_steps: int

    def init(self) -> _WarmupCosineState:
        return _WarmupCosineState(
            jnp.zeros([], jnp.int32), jnp.float32(self.peak),
            jnp.float32(self.warmup_steps), jnp.float32(self.total_steps),
        )

    def update(self, state: _WarmupCosineState, **_) -> _WarmupCosineState:
        return state._replace(count=state.count + 1)

    def __call__(self, state: _WarmupCosineState, **_) -> jax.Array:
        t = state.count.astype(jnp.float32)
        warm = (t + 1) / jnp.maximum(state.warmup, 1.0)
        progress = jnp.clip((t - state.warmup) / jnp.maximum(state.total - state.warmup, 1.0), 0.0, 1.0)
        return state.peak * jnp.where(t < state.warmup, warm, 0.5 * (1.0 + jnp.cos(jnp.pi * progress)))


def _clipped_adamw(learning_rate, weight_decay, max_grad_norm) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(max_grad_norm), optax.adamw(learning_rate, weight_decay=weight_decay)
    )


class Trainer(peft_trainer.PeftTrainer):
    """Tunix's trainer, minus its per-step read of the injected learning rate for its log: that
    read waits for the step just dispatched, so the next step could not be prepared while it runs
    (a plain optax optimizer has no such hyperparameter, and no such wait).

    `compiled` (a warm worker's, training/warm.py): the jitted steps of an earlier trainer of the
    same program, run on this trainer's model and optimizer; filled here when empty."""

    def __init__(self, *args, compiled=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._compiled = compiled

    def jit_train_and_eval_step(self, skip_jit: bool = False, cache_nnx_graph: bool = False):
        if self._compiled is None or skip_jit:
            return super().jit_train_and_eval_step(skip_jit, cache_nnx_graph)
        if self._jitted_train_step_fn is None:
            self._shard_optimizer(pxla.thread_resources.env.physical_mesh)
            if self._compiled.train is None:
                steps = _StepFunctions(self)
                self._compiled.train = nnx.jit(steps._train_step, donate_argnames=("optimizer",))
                self._compiled.eval = nnx.jit(steps._eval_step)
            # As tunix binds its own: this trainer's model and optimizer, their graph cached or not.
            bind = (lambda f, *args: functools.partial(nnx.cached_partial(f, *args))) if cache_nnx_graph else functools.partial
            self._jitted_train_step_fn = bind(self._compiled.train, self.model, self.optimizer)
            self._jitted_eval_step_fn = bind(self._compiled.eval, self.model)
        return self._jitted_train_step_fn, self._jitted_eval_step_fn

    def _try_get_learning_rate(self):
        return None

    def _shard_optimizer(self, mesh) -> None:
        """Without a mesh (one CPU or GPU), tunix leaves the model and optimizer state as created:
        uncommitted arrays, which the first step hands back committed, so the train step (and
        the eval step) compiled a second time at step 2, about 10 s a trial on these CPUs. Put
        them on the device first: every step then runs the one compiled program."""
        if not mesh.empty:
            return super()._shard_optimizer(mesh)
        device = jax.local_devices()[0]
        for owner in (self.model, self.optimizer):  # the weights (frozen ones too), then moments and step
            nnx.update(owner, jax.device_put(nnx.state(owner), device))


class _StepFunctions:
    """Tunix's train and eval steps with what they read of their trainer (its loss and input
    functions, the same for every trainer of a program), so a kept compiled step does not keep
    the first trainer's model and optimizer state alive."""

    _train_step = peft_trainer.PeftTrainer._train_step
    _eval_step = peft_trainer.PeftTrainer._eval_step

    def __init__(self, trainer: peft_trainer.PeftTrainer):
        self.loss_fn, self.eval_loss_fn = trainer.loss_fn, trainer.eval_loss_fn
        self.gen_model_input_fn, self._lora_enabled, self._has_aux = (
            trainer.gen_model_input_fn, trainer._lora_enabled, trainer._has_aux)


def make_optimizer(hp: Hyperparameters, total_steps: int) -> optax.GradientTransformation:
    # One inject_hyperparams around the whole chain: all scalars become state.
    return optax.inject_hyperparams(_clipped_adamw)(
        learning_rate=WarmupCosine(hp.learning_rate, hp.warmup_steps, total_steps),
        weight_decay=hp.weight_decay,
        max_grad_norm=hp.max_grad_norm,
    )


def optimizer_numbers(hp: Hyperparameters, total_steps: int) -> dict[str, jax.Array]:
    """The optimizer state's numbers for a run (hyperparams.CHANGEABLE_ON_RESUME), as the arrays
    the state holds."""
    return {"peak": jnp.float32(hp.learning_rate), "warmup": jnp.float32(hp.warmup_steps),
            "total": jnp.float32(total_steps), "weight_decay": jnp.float32(hp.weight_decay),
            "max_grad_norm": jnp.float32(hp.max_grad_norm)}


def set_optimizer_numbers(optimizer: nnx.Optimizer, hp: Hyperparameters, total_steps: int) -> None:
    """Overwrite the scalars a restored optimizer state brought from the run that saved it
    (hyperparams.CHANGEABLE_ON_RESUME)."""
    state, numbers = optimizer.opt_state, optimizer_numbers(hp, total_steps)
    schedule = state.hyperparams_states["learning_rate"]
    for name in ("peak", "warmup", "total"):
        getattr(schedule, name).value = numbers[name]
    for name in ("weight_decay", "max_grad_norm"):
        state.hyperparams[name].value = numbers[name]
