"""Will a run fit in this machine's memory? An estimate, made before anything loads.

Training on CPU in float32 holds, per parameter P: the weights (4 bytes); full fine-tuning adds
their gradients (4) and AdamW's two moments (8): 16 bytes in all, LoRA about 4 (its adapters
are small). Per token of a batch (batch_size x max_seq_length) it holds the logits, their
softmax and gradient (3 x vocab x 4 bytes: the 262k-word Gemma vocabulary makes this the
largest term) and the layers' activations kept for the backward pass (~ 24 x hidden x layers
bytes). LoRA's adapters and their gradients and moments take 16 bytes per adapter parameter:
rank x (inputs + outputs) of each adapted projection, about 20 hidden widths a layer over the
seven projections of the families we load. A pack of K trials (training/packed.py) holds one
base and K of everything else: K batches, K sets of adapters. A run is said to fit when the
estimate is at most 80% of the machine's memory: what the estimate leaves out (XLA's buffers,
the Python process) rarely needs more than the rest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

FIT_FRACTION = 0.8
ADAPTED_WIDTHS_PER_LAYER = 20


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
             machine_bytes: int | None = None, lora_rank: int = 0, slots: int = 1) -> MemoryEstimate:
    """`lora_rank`: the adapters' rank (lora_bytes); `slots`: trials in one pack (lora_bytes)."""
    tokens = batch_size * seq_len
    activations = tokens * (3 * vocab * 4 + 24 * hidden * layers)
    adapters = 16 * lora_rank * ADAPTED_WIDTHS_PER_LAYER * hidden * layers
    return MemoryEstimate(lora_bytes=4 * parameters + slots * (activations + adapters),
                          full_bytes=16 * parameters + activations, machine_bytes=machine_bytes or machine_memory())


def gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
