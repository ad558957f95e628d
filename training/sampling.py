"""Decoding through Tunix's Sampler (KV cache), for evaluation and for `tunix-tune generate`.

Prompts are already rendered (chat template, or prompt + separator); the tokenizer's BOS, when it
has one, is prepended by the Sampler. JAX and Tunix are imported only when decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flax import nnx

    from training.tokenizer import CharTokenizer, HfTokenizer
    from training.warm import WarmWorker

# Prompts decoded together; bounds the KV cache and logits of one batch on large eval splits.
MAX_DECODE_BATCH = 512


@dataclass(frozen=True)
class Completion:
    text: str
    token_ids: list[int]  # generated, up to (not including) the first end token
    prompt_token_ids: list[int]  # what the model was given: [BOS] + the rendered prompt


class _SamplerTokenizer:
    """Our tokenizers with the method-style special ids Tunix's TokenizerAdapter requires, and the
    pad id this batch is decoded with (see sampling_pad_id)."""

    def __init__(self, tokenizer: "CharTokenizer | HfTokenizer", pad_id: int):
        self._tokenizer, self._pad_id = tokenizer, pad_id

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text)

    def decode(self, ids) -> str:
        return self._tokenizer.decode(ids)

    def bos_id(self) -> int | None:  # None (SmolLM2, Qwen): the Sampler prepends nothing
        return self._tokenizer.bos_id

    def eos_id(self) -> int:
        return self._tokenizer.eos_id

    def pad_id(self) -> int:
        return self._pad_id


def prompt_ids(tokenizer: "CharTokenizer | HfTokenizer", rendered: str) -> list[int]:
    """The ids the Sampler feeds for a rendered prompt: the BOS (when the tokenizer has one), then the text."""
    return [*([tokenizer.bos_id] if tokenizer.bos_id is not None else []), *tokenizer.encode(rendered)]


def sampling_pad_id(tokenizer: "CharTokenizer | HfTokenizer", prompts: Sequence[Sequence[int]]) -> int:
    """The Sampler masks every prompt position holding its pad id, so the pad must occur in no prompt.

    SmolLM2's pad is `<|im_end|>`, which ends every chat turn: padding with it hides the turn ends
    from the model (3 of 8 greedy answers changed when measured). Then another special token that
    occurs in no prompt is used (SmolLM2: `<|endoftext|>`, id 0); the tokenizer's own pad otherwise.
    """
    used = {i for ids in prompts for i in ids}
    if tokenizer.pad_id not in used:
        return tokenizer.pad_id
    for candidate in sorted(getattr(tokenizer, "special_ids", ())):
        if candidate not in used:
            return candidate
    raise ValueError(f"every special token of the tokenizer occurs in the prompts; none can pad them "
                     f"(the pad id {tokenizer.pad_id} would be masked out of the prompts)")


def complete(
    model: "nnx.Module", tokenizer: "CharTokenizer | HfTokenizer", prompts: Sequence[str], max_new_tokens: int,
    temperature: float = 0.0, seed: int = 0, worker: "WarmWorker | None" = None,
) -> list[Completion]:
    """Completions of rendered `prompts`, up to an end token or max_new_tokens; greedy at temperature 0,
    else sampled from the whole distribution at that temperature (reproducible for a seed). A warm
    `worker` (training/warm.py) keeps the compiled sampler of each decoding shape."""
    from tunix.generate import sampler as sampler_lib
    from tunix.generate.utils import next_power_of_2

    if not prompts:
        return []
    ids = [prompt_ids(tokenizer, p) for p in prompts]
    # The sampler left-pads prompts to this length; a power of two keeps one compiled program per
    # (batch, length) bucket and lets the KV cache be sized exactly.
    prompt_len = next_power_of_2(max(len(i) for i in ids))
    config, pad_id, cache_size = model.config, sampling_pad_id(tokenizer, ids), prompt_len + max_new_tokens

    def make_sampler():
        return sampler_lib.Sampler(
            model, _SamplerTokenizer(tokenizer, pad_id),
            sampler_lib.CacheConfig(
                cache_size=cache_size,
                num_layers=config.num_layers, num_kv_heads=config.num_kv_heads, head_dim=config.head_dim,
            ),
        )

    sampler = make_sampler() if worker is None else worker.sampler(model, (pad_id, cache_size), make_sampler)
    sampled = {"temperature": temperature, "top_p": 1.0, "seed": seed} if temperature > 0 else {}
    # Equal-sized batches, the last topped up with repeats: every batch reuses one program.
    n_batches = -(-len(prompts) // MAX_DECODE_BATCH)
    size = -(-len(prompts) // n_batches)
    filler = n_batches * size - len(prompts)
    padded, padded_ids = list(prompts) + [prompts[0]] * filler, ids + [ids[0]] * filler
    out: list[Completion] = []
    for start in range(0, len(padded), size):
        result = sampler(
            padded[start:start + size], max_generation_steps=max_new_tokens,
            max_prompt_length=prompt_len, echo=False, eos_tokens=list(tokenizer.eos_ids), **sampled,
        )
        out += [Completion(text, [int(t) for t in tokens], padded_ids[start + n])
                for n, (text, tokens) in enumerate(zip(result.text, result.tokens, strict=True))]
    return out[: len(prompts)]
