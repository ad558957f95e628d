"""A checkpoint folder or a GGUF file checked and sized for the listing (nothing loaded or converted)."""

from __future__ import annotations

from training.hf_checkpoint import BrokenCheckpoint, HfCheckpoint, read_checkpoint
from training.memory import estimate
from training.sources.base import AvailableModel, ModelSource


def sized(source: ModelSource, batch_size: int, seq_len: int) -> AvailableModel:
    quantization = source.gguf.quantization if source.gguf else None
    try:
        checkpoint = checkpoint_of(source)
    except BrokenCheckpoint as exc:
        return AvailableModel(source, problem=str(exc), quantization=quantization)
    config = checkpoint.config
    return AvailableModel(source, checkpoint.family, checkpoint.num_parameters, estimate(
        checkpoint.num_parameters, config["vocab_size"], config["hidden_size"], checkpoint.num_layers,
        batch_size, seq_len), quantization=quantization)


def checkpoint_of(source: ModelSource) -> HfCheckpoint:
    """What the model is, checked as a checkpoint folder is: a GGUF file from its header alone."""
    if source.gguf is not None and source.folder is None:
        from training.sources.gguf_file import gguf_checkpoint

        return gguf_checkpoint(source.gguf.path)
    return read_checkpoint(source.folder)
