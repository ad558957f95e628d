"""Evaluation: greedy decoding through Tunix's Sampler, scored by exact match as Tunix RT did.

`answer_correctness` is pure Python; JAX and Tunix are
imported only by `generate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from training.traces import Trace

if TYPE_CHECKING:
    from flax import nnx

    from training.tokenizer import CharTokenizer

# Prompts decoded together; bounds the KV cache and logits of one batch on large eval splits.
_MAX_DECODE_BATCH = 512


def _normalise(text: str) -> str:
    return text.strip().lower()


def answer_correctness(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of exact matches after strip() and lower(); 0.0 for no predictions."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        return 0.0
    hits = sum(_normalise(p) == _normalise(r) for p, r in zip(predictions, references, strict=True))
    return hits / len(predictions)


class _SamplerTokenizer:
    """CharTokenizer with the method-style special ids Tunix's TokenizerAdapter requires."""

    def __init__(self, tokenizer: "CharTokenizer"):
        self._tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text)

    def decode(self, ids) -> str:
        return self._tokenizer.decode(ids)

    def bos_id(self) -> int:
        return self._tokenizer.bos_id

    def eos_id(self) -> int:
        return self._tokenizer.eos_id

    def pad_id(self) -> int:
        return self._tokenizer.pad_id


def generate(
    model: "nnx.Module", tokenizer: "CharTokenizer", prompts: Sequence[str], max_new_tokens: int = 8
) -> list[str]:
    """Greedy completions of `prompts` (BOS is prepended, as in training), up to EOS."""
    from tunix.generate import sampler as sampler_lib
    from tunix.generate.utils import next_power_of_2

    if not prompts:
        return []
    # The sampler left-pads prompts to this length; fixing it here keeps one compiled program
    # per (batch, length) and lets the KV cache be sized exactly.
    prompt_len = next_power_of_2(1 + max(len(tokenizer.encode(p)) for p in prompts))
    config = model.config
    sampler = sampler_lib.Sampler(
        model,
        _SamplerTokenizer(tokenizer),
        sampler_lib.CacheConfig(
            cache_size=prompt_len + max_new_tokens,
            num_layers=config.num_layers, num_kv_heads=config.num_kv_heads, head_dim=config.head_dim,
        ),
    )
    # Equal-sized batches, the last topped up with repeats: every batch reuses one program.
    n_batches = -(-len(prompts) // _MAX_DECODE_BATCH)
    size = -(-len(prompts) // n_batches)
    padded = list(prompts) + [prompts[0]] * (n_batches * size - len(prompts))
    outputs: list[str] = []
    for start in range(0, len(padded), size):
        result = sampler(
            padded[start:start + size], max_generation_steps=max_new_tokens,
            max_prompt_length=prompt_len, echo=False, eos_tokens=list(tokenizer.eos_ids),
        )
        outputs.extend(result.text)
    return outputs[: len(prompts)]


def evaluate(
    model: "nnx.Module", tokenizer: "CharTokenizer", traces: Sequence[Trace]
) -> tuple[dict[str, float], list[dict]]:
    """(metrics, predictions): answer_correctness in [0, 1], score = 100 × answer_correctness."""
    references = [t.final_answer for t in traces]
    # Room for the longest reference answer and its EOS (at least 8 tokens: one compiled program
    # for every short-answer dataset).
    longest = max((len(tokenizer.encode(r)) for r in references), default=0)
    predictions = generate(model, tokenizer, [tokenizer.render(t) for t in traces], max_new_tokens=max(8, longest + 2))
    correctness = answer_correctness(predictions, references)
    rows = [
        {
            "trace_id": t.trace_id, "prompt": t.prompt, "prediction": p, "reference": t.final_answer,
            "correct": _normalise(p) == _normalise(t.final_answer),
        }
        for t, p in zip(traces, predictions, strict=True)
    ]
    return {"answer_correctness": correctness, "score": 100.0 * correctness}, rows
