"""A trained model's weights on disk (an Orbax checkpoint directory), and back.

Only parameters are saved: the architecture comes from the model id, so loading rebuilds the
model and overwrites every weight. train() merges LoRA adapters into the base weights, so a
LoRA run's checkpoint has the same layout as a full fine-tune's.
"""

from __future__ import annotations

from pathlib import Path

import orbax.checkpoint as ocp
from flax import nnx

from training.model import build_model


def save(model: nnx.Module, path: Path) -> Path:
    """Write the model's parameters to the directory `path` (replaced if it exists)."""
    path = Path(path).resolve()  # Orbax wants absolute paths
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, nnx.state(model, nnx.Param), force=True)
        checkpointer.wait_until_finished()
    return path


def load(model_id: str, vocab_size: int, path: Path) -> nnx.Module:
    """The model `save` wrote: a built-in architecture with the checkpoint's weights."""
    model, _ = build_model(model_id, vocab_size, seed=0)  # every weight is overwritten below
    return restore_into(model, path)


def restore_into(model: nnx.Module, path: Path) -> nnx.Module:
    """Overwrite every parameter of `model` (any architecture) with the checkpoint `save` wrote."""
    target = nnx.state(model, nnx.Param)
    with ocp.StandardCheckpointer() as checkpointer:
        nnx.update(model, checkpointer.restore(Path(path).resolve(), target))
    return model
