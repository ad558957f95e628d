"""A warm trial worker: what one worker process keeps between the trials it runs.

A trial's fixed cost is loading the base model, wrapping it in LoRA adapters (qwix traces the
model once), compiling the train and eval steps, and compiling the sampler the evaluation
decodes with; the next trial of the same job pays all of it again. A `WarmWorker` keeps them:

- the base model, and a copy of its weights as loaded: a trial merges its adapters into (or,
  fully fine-tuned, trains) the base in place, and the next trial starts from the copy;
- per program (base, LoRA rank, alpha and targets): the LoRA model, the optimizer transformation
  and the compiled train and eval steps. Every optimizer number lives in the optimizer state
  (training/optimizer.py), so a trial with other numbers runs the same compiled step;
- per program and seed: the adapters as qwix initialises them, written back before each trial;
- the sampler of each decoding shape, which reads the model's weights by reference.

A trial on a warm worker therefore runs exactly what a fresh process runs: the same weights,
the same initial adapters, the same compiled program (tests/e2e/test_warm_worker.py).
Ray Tune reuses a trial's worker process for the next trial that needs the same resources
(`reuse_actors`); the process owns its one worker (`process_worker`).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from training.base_model import BaseModel
from training.catalog import ModelSource

# Compiled programs kept at once: a sweep over ranks or targets compiles one per value. The base
# model is kept once: a job tunes one base, and a real one is large.
MAX_PROGRAMS = 4


@dataclass
class CompiledSteps:
    """The jitted train and eval steps of one program, filled by the first trainer that runs it
    (training/optimizer.Trainer) and reused by every later one."""

    train: Any = None
    eval: Any = None


@dataclass
class _Program:
    model: Any  # the LoRA model, once built (or the base itself, fully fine-tuned)
    lora_by_seed: dict[int, dict] = field(default_factory=dict)  # initial adapters, as pure arrays
    tx: Any = None
    steps: CompiledSteps = field(default_factory=CompiledSteps)


@dataclass
class _Base:
    key: Hashable
    base: BaseModel
    loaded: dict  # the weights as loaded, as pure arrays


class WarmWorker:
    """Loaded models, adapters and compiled programs, kept between the trials of one process."""

    def __init__(self, max_programs: int = MAX_PROGRAMS):
        self.max_programs = max_programs
        self._base: _Base | None = None
        self._programs: OrderedDict[Hashable, _Program] = OrderedDict()
        self._samplers: dict[Hashable, tuple[Any, Any]] = {}
        self.trials = 0  # trials this worker began; more than one: the later ones ran warm

    def base(self, source: ModelSource, seed: int, load: Callable[[], BaseModel]) -> BaseModel:
        """The base model of `source` with its weights as loaded; `load` runs once per base.
        A built-in model is initialised from the seed: each seed is another base."""
        from flax import nnx

        self.trials += 1
        key = (source.kind, source.model_id, str(source.folder), source.revision,
               seed if source.kind == "built-in" else None)
        if self._base is not None and self._base.key == key:
            return self.pristine()
        self._programs.clear()  # every program wraps the previous base
        self._samplers.clear()
        base = load()
        self._base = _Base(key, base, nnx.to_pure_dict(nnx.state(base.model)))
        return base

    def pristine(self) -> BaseModel:
        """The base model, its weights written back as loaded (a trial merged into them)."""
        from flax import nnx

        model = self._base.base.model
        state = nnx.state(model)
        nnx.replace_by_pure_dict(state, self._base.loaded)
        nnx.update(model, state)
        return self._base.base

    def program(self, base_model, rank: int, alpha: float, module_path: str) -> _Program:
        """The program of a trial on `base_model`: LoRA of this rank, alpha and targets, or (rank
        0) full fine-tuning of the base itself."""
        key = (id(base_model), rank, alpha, module_path if rank else None)
        if key in self._programs:
            self._programs.move_to_end(key)
            return self._programs[key]
        if len(self._programs) >= self.max_programs:
            self._programs.popitem(last=False)
        self._programs[key] = _Program(None if rank else base_model)
        return self._programs[key]

    def adapted(self, program: _Program, seed: int, apply: Callable[[int], Any]) -> Any:
        """The program's LoRA model with its adapters as `apply(seed)` initialises them."""
        from flax import nnx

        if program.model is None:  # the program's first trial
            program.model = apply(seed)
            program.lora_by_seed[seed] = nnx.to_pure_dict(nnx.state(program.model, nnx.LoRAParam))
            return program.model
        if seed not in program.lora_by_seed:  # qwix draws the adapters of this seed once
            program.lora_by_seed[seed] = nnx.to_pure_dict(nnx.state(apply(seed), nnx.LoRAParam))
        adapters = nnx.state(program.model, nnx.LoRAParam)
        nnx.replace_by_pure_dict(adapters, program.lora_by_seed[seed])
        nnx.update(program.model, adapters)
        return program.model

    def optimizer(self, program: _Program, make: Callable[[], Any]) -> Any:
        """One optimizer transformation per program: a new one would compile the step again; the
        trial's numbers go into its state (optimizer.set_optimizer_numbers)."""
        if program.tx is None:
            program.tx = make()
        return program.tx

    def sampler(self, model, shape: Hashable, make: Callable[[], Any]) -> Any:
        """The sampler of `model` (the base, or a LoRA model mid-run) for one decoding shape (its
        pad id and cache size). It reads the model's variables by reference, so it decodes the
        weights the model has now; it is kept with the model, whose id is then never reused."""
        key = (id(model), shape)
        if key not in self._samplers or self._samplers[key][0] is not model:
            self._samplers[key] = (model, make())
        return self._samplers[key][1]


@functools.cache
def process_worker() -> WarmWorker:
    """This process's worker: a Ray Tune trial process runs one trial after another."""
    return WarmWorker()
