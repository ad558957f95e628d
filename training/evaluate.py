"""Evaluation: greedy decoding through Tunix's Sampler (training/sampling.py), scored three ways.

- `answer_correctness` (and `score` = 100 × it): the answer equals the reference after strip() and
  lower(), as Tunix RT scored it; kept as it was so recorded scores stay comparable;
- `exact_match`: equal after normalise_answer (case, punctuation and whitespace ignored);
- `contains`: the normalised reference occurs in the normalised answer as whole words, for chat
  models that answer in a sentence ("The capital of France is Paris." contains "Paris").

The metrics are pure Python; JAX and Tunix are imported only by `generate`.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from training.traces import Trace

if TYPE_CHECKING:
    from flax import nnx

    from training.tokenizer import CharTokenizer, HfTokenizer
    from training.warm import WarmWorker

_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _normalise(text: str) -> str:
    return text.strip().lower()


def normalise_answer(text: str) -> str:
    """Lower-case, ASCII punctuation removed, runs of whitespace made one space, ends stripped."""
    return " ".join(text.lower().translate(_PUNCTUATION).split())


def _contains(prediction: str, reference: str) -> bool:
    # Padded with spaces: whole words only ("par" is not in "paris").
    return f" {normalise_answer(reference)} " in f" {normalise_answer(prediction)} "


def _exact(prediction: str, reference: str) -> bool:
    return normalise_answer(prediction) == normalise_answer(reference)


def _fraction(hit: Callable[[str, str], bool], predictions: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of pairs that `hit`; 0.0 for no predictions."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        return 0.0
    return sum(hit(p, r) for p, r in zip(predictions, references, strict=True)) / len(predictions)


def answer_correctness(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of exact matches after strip() and lower()."""
    return _fraction(lambda p, r: _normalise(p) == _normalise(r), predictions, references)


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of answers equal to their reference after normalise_answer."""
    return _fraction(_exact, predictions, references)


def contains(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of answers holding their normalised reference as whole words."""
    return _fraction(_contains, predictions, references)


def generate(
    model: "nnx.Module", tokenizer: "CharTokenizer | HfTokenizer", prompts: Sequence[str], max_new_tokens: int = 8,
    worker: "WarmWorker | None" = None,
) -> list[str]:
    """Greedy completions of rendered `prompts` (BOS is prepended, as in training), up to EOS; batched."""
    from training.sampling import complete

    return [c.text for c in complete(model, tokenizer, prompts, max_new_tokens, worker=worker)]


def evaluate(
    model: "nnx.Module", tokenizer: "CharTokenizer", traces: Sequence[Trace], worker: "WarmWorker | None" = None,
) -> tuple[dict[str, float], list[dict]]:
    """(metrics, predictions): answer_correctness, exact_match and contains in [0, 1], score = 100 ×
    answer_correctness; one greedy decoding pass over the traces."""
    references = [t.final_answer for t in traces]
    # Room for the longest reference answer and its EOS (at least 8 tokens: one compiled program
    # for every short-answer dataset).
    longest = max((len(tokenizer.encode(r)) for r in references), default=0)
    predictions = generate(model, tokenizer, [tokenizer.render(t) for t in traces], max_new_tokens=max(8, longest + 2),
                           worker=worker)
    correctness = answer_correctness(predictions, references)
    metrics = {"answer_correctness": correctness, "score": 100.0 * correctness,
               "exact_match": exact_match(predictions, references), "contains": contains(predictions, references)}
    rows = [
        {
            "trace_id": t.trace_id, "prompt": t.prompt, "prediction": p, "reference": t.final_answer,
            "correct": _normalise(p) == _normalise(t.final_answer),
            "exact_match": _exact(p, t.final_answer), "contains": _contains(p, t.final_answer),
        }
        for t, p in zip(traces, predictions, strict=True)
    ]
    return metrics, rows
