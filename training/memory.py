"""Will a run fit in this machine's memory? An estimate, made before anything loads.

Training on CPU in float32 holds, per parameter P: the weights (4 bytes); full fine-tuning adds
their gradients (4) and AdamW's two moments (8): 16 bytes in all, LoRA about 4 (its adapters
are small). Per token of a batch (batch_size x max_seq_length) it holds the logits, their
softmax and gradient (3 x vocab x 4 bytes: the 262k-word Gemma vocabulary makes this the
largest term) and the layers' activations kept for the backward pass (~ 24 x hidden x layers
bytes). A run is said to fit when the estimate is at most 80% of the machine's memory: what
the estimate leaves out (XLA's buffers, the Python process) rarely needs more than the rest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

FIT_FRACTION = 0.8


@dataclass(frozen=True)
class MemoryEstimate:
    lora_bytes: int
    full_bytes: int
    machine_bytes: int

    @property
    def fits_lora(self) -> bool:
        return self.lora_bytes <= FIT_FRACTION * self.machine_bytes

    @property
    def fits_full(self) -> bool:
        return self.full_bytes <= FIT_FRACTION * self.machine_bytes


def machine_memory() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def estimate(parameters: int, vocab: int, hidden: int, layers: int, batch_size: int, seq_len: int,
             machine_bytes: int | None = None) -> MemoryEstimate:
    tokens = batch_size * seq_len
    activations = tokens * (3 * vocab * 4 + 24 * hidden * layers)
    return MemoryEstimate(lora_bytes=4 * parameters + activations, full_bytes=16 * parameters + activations,
                          machine_bytes=machine_bytes or machine_memory())


def gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
